//! The rules of the product, with no IO beyond the store: pauses and their one-way status
//! change, API keys, signed response links, webhook events and secrets, and verifying the
//! audit chain.
//!
//! - [`approvals`]: a coding agent's hook event asked of a person, and the rules
//!   ("Allow for 1 hour") that answer it without asking.
//! - [`pauses`]: create, wait, and the move from `pending` to a decision.
//! - [`clicks`]: answers given by a button inside Slack.
//! - [`keys`]: API keys, hashed at rest.
//! - [`projects`]: the name humans see for who asks, and renaming it.
//! - [`links`]: the signed links humans answer through.
//! - [`webhooks`]: the events a decision announces, and the secrets that sign them.
//! - [`audit`]: verifying the tamper-evident audit chain.
//! - [`proof`]: the audit key, signed checkpoints and decision receipts.
//! - [`replies`]: answers by SMS reply.
//! - [`reports`]: providers' reports on messages they accepted (delivery receipts).
//! - [`status`]: how far behind the queues are, for operators.

pub mod approvals;
pub mod audit;
pub mod clicks;
pub mod keys;
pub mod links;
pub mod pauses;
pub mod projects;
pub mod proof;
pub mod replies;
pub mod reports;
pub mod status;
pub mod webhooks;
