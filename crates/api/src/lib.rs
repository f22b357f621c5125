//! PausePoint's wire types and validation rules: no IO, shared by the server, the client
//! and the MCP server so that all three agree on every field name and every rule.
//!
//! - [`pause`]: the Pause object, its status and channel, the create request and lists.
//! - [`validation`]: turns a create request into a [`validation::NewPause`] that cannot
//!   hold a bad value, and a human's answer into a [`validation::Decision`].
//! - [`audit`]: audit events, the hash chain that makes them tamper-evident, and the
//!   verification report.
//! - [`webhooks`]: Standard Webhooks events, secrets and signatures.
//! - [`proof`]: the audit key, signed checkpoints, decision receipts, and the chain walk
//!   that checks them, online and offline.
//! - [`claude_code`]: Claude Code's permission hooks: their input, the question asked,
//!   and the answer.
//! - [`rules`]: remembered approvals ("Allow for 1 hour").
//! - [`text`]: what counts as visible, and as the same, in what people read.
//! - [`time`]: the one spelling of a time on the wire.
//! - [`error`]: the `{"error": {"code", "message", "field"}}` body every failure uses.

pub mod audit;
pub mod canonical;
pub mod claude_code;
pub mod error;
pub mod pause;
pub mod proof;
pub mod rules;
pub mod text;
pub mod time;
pub mod validation;
pub mod webhooks;

pub use audit::{AuditEvent, AuditEventKind, AuditPage, VerifyReport};
pub use error::{ErrorBody, ErrorDetail};
pub use pause::{
    shown_recipient, Approver, Channel, CreatePause, Delivery, DeliveryStatus, EscalationTier,
    Pause, PauseList, PauseStatus, Quorum, RecipientSpec, Vote,
};
pub use validation::{Decision, NewPause, ValidationError};
