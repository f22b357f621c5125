//! `pp receipt verify`: checks a decision receipt with the audit public key, offline.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use pausepoint_api::proof::{sha256_hex, ReceiptClaims};

use crate::{output, Outcome};

#[derive(Args)]
pub struct ReceiptArgs {
    #[command(subcommand)]
    command: ReceiptCommand,
}

#[derive(Subcommand)]
enum ReceiptCommand {
    /// Check that the server's audit key signed this receipt, and for which message
    #[command(
        after_help = "Examples:\n  pp receipt verify \"$(pp status $ID --json | jq -r .receipt)\" --public-key audit-key.json --message \"Wire $8,400 to Meridian?\"\n  pp receipt verify - --public-key 11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo < receipt.txt\n\nExit 0 when the receipt holds (and is for --message), 1 when not."
    )]
    Verify {
        /// The receipt (a compact JWS), or - to read it from stdin
        receipt: String,
        /// The audit public key: a file, or the key itself (JWK set, JWK or base64url)
        #[arg(long, value_name = "KEY")]
        public_key: String,
        /// Fail unless the receipt is for exactly this message
        #[arg(long, value_name = "TEXT")]
        message: Option<String>,
        /// Print the receipt's claims as JSON
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: ReceiptArgs) -> anyhow::Result<Outcome> {
    let ReceiptCommand::Verify {
        receipt,
        public_key,
        message,
        json,
    } = args.command;
    let receipt = if receipt == "-" {
        std::io::read_to_string(std::io::stdin()).context("cannot read the receipt from stdin")?
    } else {
        receipt
    };
    let keys = crate::audit::read_keys(&public_key)?;
    let claims = ReceiptClaims::verify(receipt.trim(), &keys)
        .map_err(|e| anyhow::anyhow!("the receipt does not hold: {e}"))?;
    if let Some(message) = &message {
        if sha256_hex(message.as_bytes()) != claims.message_sha256 {
            bail!("the receipt is for another message than the one given");
        }
    }
    if json {
        output::json(&claims)?;
    } else {
        let choice = claims
            .response_choice
            .as_deref()
            .map(|c| format!(" {c:?}"))
            .unwrap_or_default();
        println!(
            "The receipt holds: pause {} {}{choice}, by {} at {} (audit event {}).",
            claims.pause_id, claims.status, claims.decided_by, claims.decided_at, claims.audit_seq
        );
        if message.is_some() {
            println!("It is for exactly the message given.");
        }
    }
    Ok(Outcome::Done)
}
