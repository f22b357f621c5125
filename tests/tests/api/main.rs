//! The REST API end to end: the real server on `127.0.0.1:0` with a real SQLite file.

#![allow(clippy::unwrap_used)]

mod approvers;
mod audit;
mod console;
mod delivery;
mod hardening;
mod hooks;

mod idempotency_and_tenancy;
mod keys;
mod long_poll;
mod ntfy;
mod openapi;
mod page;
mod plans;
mod proof;

mod races;
mod slack_app;
mod sms_replies;
mod spec_examples;
mod timeouts;
mod validation;
mod webhooks;
mod wire;
