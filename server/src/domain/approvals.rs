//! Approvals for coding agents: a Claude Code hook event becomes a question to a person,
//! or is allowed by a rule that person made ("Allow for 1 hour"), and the decision
//! becomes the hook's answer. `POST /v1/hooks/claude-code` is the way in; `pp hook
//! claude-code` posts there.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use pausepoint_api::claude_code::{self, HookInput, Verdict, REMEMBER_SECONDS};
use pausepoint_api::proof::sha256_hex;
use pausepoint_api::validation::{NewPause, Recipient};
use pausepoint_api::{AuditEventKind, Channel, CreatePause};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::pauses::{now, Idempotency, PauseError, Pauses};
use crate::ids::{PauseId, ProjectId, RuleId};
use crate::store::rules::{NewRule, RuleRecord};
use crate::store::{Actor, Store};

/// How long after a question's deadline an approval still waits for the timeout to be
/// recorded, before it denies on its own: short, so that the deny reaches Claude Code
/// before the hook's own timeout would let the call through.
const GRACE: Duration = Duration::from_secs(2);

/// Who is asked, and how long they have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approver {
    /// A phone number, an email address or a Slack webhook URL.
    pub recipient: String,
    /// Inferred from the recipient when None.
    pub channel: Option<Channel>,
    pub timeout: Duration,
}

/// Why a rule could not be revoked.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("no rule in force with this id (it may have expired or been revoked)")]
    NotInForce,
    #[error(transparent)]
    Pause(#[from] PauseError),
}

impl From<crate::store::StoreError> for RuleError {
    fn from(e: crate::store::StoreError) -> RuleError {
        RuleError::Pause(e.into())
    }
}

/// Approvals and their rules. Cheap to clone.
#[derive(Clone)]
pub struct Approvals {
    pauses: Pauses,
    store: Store,
}

impl Approvals {
    pub fn new(pauses: Pauses, store: Store) -> Approvals {
        Approvals { pauses, store }
    }

    /// Decides a hook event: allowed at once by a rule in force, or asked of `approver`
    /// and waited for until they answer or their time is up (a deny). None when the
    /// server began to stop before the answer came: the caller asks again, and gets the
    /// same question back (the tool use is its idempotency key).
    pub async fn decide(
        &self,
        project_id: ProjectId,
        caller: Actor,
        max_timeout: Duration,
        input: &HookInput,
        approver: &Approver,
        stop: &CancellationToken,
    ) -> Result<Option<Verdict>, PauseError> {
        let now = now();
        let match_key = input.rule_key();
        if let Some(rule) = self.store.live_rule(project_id, &match_key, now).await? {
            self.applied(project_id, &rule, input, now).await?;
            return Ok(Some(Verdict::allow(format!(
                "Allowed by rule {}: {} allowed this same call until {}.",
                rule.id,
                rule.approved_by
                    .strip_prefix("recipient:")
                    .unwrap_or(&rule.approved_by),
                pausepoint_api::time::format(&rule.expires_at)
            ))));
        }
        let channel = approver
            .channel
            .unwrap_or_else(|| Channel::infer(&approver.recipient));
        let request = CreatePause {
            recipient: Some(approver.recipient.clone()),
            channel: Some(channel.as_str().to_owned()),
            message: Some(input.question()),
            options: Some(claude_code::options(true)),
            // A note lets the approver say why; a deny's note is Claude's reason.
            allow_text_response: Some(true),
            timeout_seconds: Some(approver.timeout.as_secs().max(1)),
            timeout_default: Some(claude_code::DENY.into()),
            metadata: Some(json!({ "claude_code": {
                "hook_event_name": input.hook_event_name.as_str(),
                "tool_name": input.tool_name,
                "tool_use_id": input.tool_use_id,
                "session_id": input.session_id,
                "cwd": input.cwd,
            }})),
            ..CreatePause::default()
        };
        let pause = NewPause::parse(request, max_timeout)?;
        let created = self
            .pauses
            .create(project_id, caller, pause, idempotency(input, approver))
            .await?;
        let id = PauseId::from(created.pause.pause_id);
        let deadline = created.pause.expires_at;
        let left = (deadline - Timestamp::now())
            .try_into()
            .unwrap_or(Duration::ZERO)
            + GRACE;
        let pause = self.pauses.wait(project_id, id, left, stop).await?;
        if !pause.status.is_final() && stop.is_cancelled() {
            return Ok(None);
        }
        if Verdict::remembers(&pause) {
            self.remember(project_id, input, &match_key, &pause).await?;
        }
        // Past the deadline with the timeout not yet recorded: it is a timeout all the same.
        if !pause.status.is_final() && Timestamp::now() >= pause.expires_at {
            let mut timed_out = pause;
            timed_out.status = pausepoint_api::PauseStatus::TimedOut;
            return Ok(Some(Verdict::of(&timed_out)));
        }
        Ok(Some(Verdict::of(&pause)))
    }

    /// Records that a rule allowed a call, with the rule as the actor.
    async fn applied(
        &self,
        project_id: ProjectId,
        rule: &RuleRecord,
        input: &HookInput,
        now: Timestamp,
    ) -> Result<(), PauseError> {
        let actor = Actor::Rule(rule.id);
        let source = rule.pause_id;
        let data = json!({
            "rule_id": rule.id,
            "tool_name": input.tool_name,
            "tool_use_id": input.tool_use_id,
            "session_id": input.session_id,
            "question": input.question(),
        });
        self.store
            .write(move |tx| {
                Box::pin(async move {
                    tx.append_audit(
                        project_id,
                        AuditEventKind::RuleApplied,
                        Some(source),
                        &actor,
                        data,
                        now,
                    );
                    Ok::<_, PauseError>(())
                })
            })
            .await
    }

    /// Makes the rule an "Allow for 1 hour" answer asked for: this exact call, for an
    /// hour from the answer. A decision makes one rule at most, however often it is read.
    async fn remember(
        &self,
        project_id: ProjectId,
        input: &HookInput,
        match_key: &str,
        pause: &pausepoint_api::Pause,
    ) -> Result<(), PauseError> {
        let approver = Actor::recipient(pause);
        let created_at = pause.response_at.unwrap_or_else(now);
        let rule = NewRule {
            pause_id: PauseId::from(pause.pause_id),
            tool_name: input.tool_name.clone(),
            match_key: match_key.to_owned(),
            question: pause.message.clone(),
            approved_by: approver.to_string(),
            created_at,
            expires_at: created_at + SignedDuration::from_secs(REMEMBER_SECONDS),
        };
        let at = now();
        self.store
            .write(move |tx| {
                Box::pin(async move {
                    if let Some(stored) = tx.insert_rule(project_id, &rule).await? {
                        tx.append_audit(
                            project_id,
                            AuditEventKind::RuleCreated,
                            Some(rule.pause_id),
                            &approver,
                            rule_data(&stored),
                            at,
                        );
                    }
                    Ok::<_, PauseError>(())
                })
            })
            .await
    }

    /// The project's rules, newest first.
    pub async fn rules(
        &self,
        project_id: ProjectId,
        limit: u32,
    ) -> Result<Vec<RuleRecord>, PauseError> {
        Ok(self.store.rules(project_id, limit).await?)
    }

    /// Ends a rule in force before its time.
    pub async fn revoke(
        &self,
        project_id: ProjectId,
        id: RuleId,
        actor: Actor,
    ) -> Result<RuleRecord, RuleError> {
        let at = now();
        self.store
            .write(move |tx| {
                Box::pin(async move {
                    let rule = tx
                        .revoke_rule(project_id, id, at)
                        .await?
                        .ok_or(RuleError::NotInForce)?;
                    tx.append_audit(
                        project_id,
                        AuditEventKind::RuleRevoked,
                        Some(rule.pause_id),
                        &actor,
                        rule_data(&rule),
                        at,
                    );
                    Ok(rule)
                })
            })
            .await
    }
}

/// A rule as the audit log records it.
fn rule_data(rule: &RuleRecord) -> serde_json::Value {
    json!({
        "rule_id": rule.id,
        "tool_name": rule.tool_name,
        "question": rule.question,
        "approved_by": rule.approved_by,
        "expires_at": pausepoint_api::time::format(&rule.expires_at),
    })
}

/// A tool use is asked about once: asking again (after a lost connection or a server
/// restart) finds the same question, while the same id with another request is refused.
fn idempotency(input: &HookInput, approver: &Approver) -> Option<Idempotency> {
    let tool_use = input.tool_use_id.as_deref()?;
    let key = format!(
        "claude-code:{}:{tool_use}",
        input.session_id.as_deref().unwrap_or("")
    );
    let asked = json!({
        "input": input,
        "recipient": approver.recipient,
        "channel": approver.channel.map(Channel::as_str),
        "timeout_seconds": approver.timeout.as_secs(),
    });
    let canonical = pausepoint_api::canonical::to_vec(&asked);
    Some(Idempotency {
        // Idempotency keys are at most 255 characters; a long one is hashed.
        key: if key.len() <= 255 {
            key
        } else {
            format!("claude-code:{}", sha256_hex(key.as_bytes()))
        },
        request_hash: sha256_hex(&canonical),
    })
}

/// Checks a recipient early, so a bad default approver is refused when the server starts.
pub fn check_approver(approver: &Approver) -> Result<(), String> {
    let channel = approver
        .channel
        .unwrap_or_else(|| Channel::infer(&approver.recipient));
    Recipient::parse(channel, &approver.recipient)
        .map(|_| ())
        .map_err(|e| e.to_string())
}
