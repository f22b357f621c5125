//! The API suite again, on PostgreSQL: each test gets a fresh database on the server
//! named by `PAUSEPOINT_TEST_POSTGRES_URL` (see `pausepoint_tests::backend`).

#![allow(clippy::unwrap_used)]

#[path = "api/approvers.rs"]
mod approvers;
#[path = "api/audit.rs"]
mod audit;
#[path = "api/console.rs"]
mod console;
#[path = "api/delivery.rs"]
mod delivery;
#[path = "api/hardening.rs"]
mod hardening;
#[path = "api/hooks.rs"]
mod hooks;
#[path = "api/idempotency_and_tenancy.rs"]
mod idempotency_and_tenancy;
#[path = "api/keys.rs"]
mod keys;
#[path = "api/long_poll.rs"]
mod long_poll;
#[path = "api/ntfy.rs"]
mod ntfy;
#[path = "api/page.rs"]
mod page;
#[path = "api/plans.rs"]
mod plans;
#[path = "api/proof.rs"]
mod proof;
#[path = "api/races.rs"]
mod races;
#[path = "api/slack_app.rs"]
mod slack_app;
#[path = "api/sms_replies.rs"]
mod sms_replies;
#[path = "api/spec_examples.rs"]
mod spec_examples;
#[path = "api/timeouts.rs"]
mod timeouts;
#[path = "api/validation.rs"]
mod validation;
#[path = "api/webhooks.rs"]
mod webhooks;
#[path = "api/wire.rs"]
mod wire;
