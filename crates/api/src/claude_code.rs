//! Claude Code's permission hooks, `PreToolUse` and `PermissionRequest`: the event Claude
//! Code sends (on a command hook's stdin, or as an HTTP hook's body), the question a
//! person is asked about it, and the answer Claude Code reads back. Shared by
//! `pp hook claude-code`, `POST /v1/hooks/claude-code` and the MCP `request_permission`
//! tool, so that all three ask and answer alike.
//!
//! The shapes follow Claude Code's hooks reference: a `PreToolUse` answer is
//! `hookSpecificOutput.permissionDecision` (`allow`, `deny` or `ask`) with a reason; a
//! `PermissionRequest` answer is `hookSpecificOutput.decision.behavior` (`allow` or
//! `deny`, with a `message`), and no decision leaves the choice to the local prompt.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::{Pause, PauseStatus};

/// The approver's options.
pub const ALLOW: &str = "Allow";
/// Allows this call, and the same call (same tool, same input, same folder) for an hour.
pub const ALLOW_FOR_AN_HOUR: &str = "Allow for 1 hour";
pub const DENY: &str = "Deny";
/// How long an "Allow for 1 hour" rule lasts, in seconds.
pub const REMEMBER_SECONDS: i64 = 3600;
/// The longest command or input shown in a question, in characters.
const SHOWN_INPUT: usize = 600;

/// The hook events PausePoint answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum HookEvent {
    PreToolUse,
    PermissionRequest,
}

impl HookEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            HookEvent::PreToolUse => "PreToolUse",
            HookEvent::PermissionRequest => "PermissionRequest",
        }
    }
}

/// What Claude Code sends a permission hook. Fields this service does not use are
/// accepted and ignored, so a newer Claude Code keeps working.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HookInput {
    pub hook_event_name: HookEvent,
    pub tool_name: String,
    #[serde(default)]
    pub tool_input: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_use_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission_mode: Option<String>,
}

/// Why a hook event cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookInputError {
    /// The event, when at least that much could be read: a `PreToolUse` is then denied
    /// rather than left to run.
    pub event: Option<HookEvent>,
    pub message: String,
}

impl fmt::Display for HookInputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HookInputError {}

impl HookInput {
    /// Reads a hook event, with a message that says what is wrong with a bad one.
    pub fn parse(body: &[u8]) -> Result<HookInput, HookInputError> {
        let fail = |event, message: String| HookInputError { event, message };
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            fail(
                None,
                format!(
                    "the hook input is not JSON ({e}); expected Claude Code's hook event on stdin"
                ),
            )
        })?;
        let Value::Object(object) = &value else {
            return Err(fail(None, "the hook input is not a JSON object".into()));
        };
        let event = match object.get("hook_event_name").and_then(Value::as_str) {
            Some("PreToolUse") => HookEvent::PreToolUse,
            Some("PermissionRequest") => HookEvent::PermissionRequest,
            Some(other) => {
                return Err(fail(
                    None,
                    format!(
                        "hook_event_name is {other:?}; this hook answers PreToolUse and PermissionRequest only"
                    ),
                ))
            }
            None => return Err(fail(None, "the hook input has no hook_event_name".into())),
        };
        let input: HookInput = serde_json::from_value(value).map_err(|e| {
            fail(
                Some(event),
                format!("the {} input is malformed: {e}", event.as_str()),
            )
        })?;
        if input.tool_name.trim().is_empty() {
            return Err(fail(
                Some(event),
                "the hook input has an empty tool_name".into(),
            ));
        }
        Ok(input)
    }

    /// The question the approver reads: "Claude Code wants to run Bash in ~/work/shop:
    /// `rm -rf build/` (clean the build). Allow?".
    pub fn question(&self) -> String {
        question(&self.tool_name, &self.tool_input, self.cwd.as_deref())
    }

    /// What an "Allow for 1 hour" rule matches: exactly this tool, this input and this
    /// folder, the things the approver saw. A SHA-256 of their canonical JSON.
    pub fn rule_key(&self) -> String {
        let seen = json!({
            "tool_name": self.tool_name,
            "tool_input": self.tool_input,
            "cwd": self.cwd,
        });
        let canonical = crate::canonical::to_vec(&seen);
        crate::proof::sha256_hex(&canonical)
    }

    /// The answer Claude Code reads for this event.
    pub fn answer(&self, verdict: &Verdict) -> Value {
        verdict.answer(self.hook_event_name, &self.tool_input)
    }
}

/// The question for a tool call, with the folder it runs in when known.
pub fn question(tool_name: &str, tool_input: &Map<String, Value>, cwd: Option<&str>) -> String {
    let place = cwd
        .filter(|c| !c.trim().is_empty())
        .map(|c| format!(" in {}", home_short(c)))
        .unwrap_or_default();
    let text = |name: &str| tool_input.get(name).and_then(Value::as_str);
    let what = match tool_name {
        "Bash" => text("command").map(|command| {
            let mut what = format!("`{}`", shorten(command));
            if let Some(description) = text("description").filter(|d| !d.trim().is_empty()) {
                what.push_str(&format!(" ({})", shorten(description)));
            }
            what
        }),
        "Write" | "Edit" | "MultiEdit" | "Read" => text("file_path").map(shorten),
        "NotebookEdit" => text("notebook_path").map(shorten),
        "WebFetch" => text("url").map(shorten),
        "WebSearch" => text("query").map(|q| format!("search for \"{}\"", shorten(q))),
        _ => None,
    }
    .unwrap_or_else(|| shorten(&input_summary(tool_input)));
    let tool = match tool_name
        .strip_prefix("mcp__")
        .and_then(|t| t.split_once("__"))
    {
        Some((server, tool)) => format!("the MCP tool {tool} of {server}"),
        None => tool_name.to_owned(),
    };
    if what.is_empty() {
        format!("Claude Code wants to run {tool}{place}. Allow?")
    } else {
        format!("Claude Code wants to run {tool}{place}: {what}. Allow?")
    }
}

/// "command: rm -rf build, description: clean" from a tool's input, on one line.
pub fn input_summary(input: &Map<String, Value>) -> String {
    input
        .iter()
        .map(|(key, value)| match value {
            Value::String(s) => format!("{key}: {s}"),
            other => format!("{key}: {other}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// One line of at most [`SHOWN_INPUT`] characters.
fn shorten(text: &str) -> String {
    let line = text.trim().replace(['\n', '\r'], " ");
    if line.chars().count() > SHOWN_INPUT {
        format!(
            "{}…",
            line.chars().take(SHOWN_INPUT - 1).collect::<String>()
        )
    } else {
        line
    }
}

/// `~/work/shop` for `/home/ana/work/shop`, `/Users/ana/work/shop` or `/root/work/shop`.
fn home_short(cwd: &str) -> String {
    let under = |prefix: &str| {
        cwd.strip_prefix(prefix)
            .map(|rest| rest.split_once('/').map_or("", |(_, path)| path))
    };
    let rest = under("/home/").or_else(|| under("/Users/")).or_else(|| {
        cwd.strip_prefix("/root")
            .filter(|r| r.is_empty() || r.starts_with('/'))
            .map(|r| r.trim_start_matches('/'))
    });
    match rest {
        Some("") => "~".into(),
        Some(path) => format!("~/{path}"),
        None => cwd.to_owned(),
    }
}

/// The options a Claude Code approval offers.
pub fn options(remember: bool) -> Vec<String> {
    if remember {
        vec![ALLOW.into(), ALLOW_FOR_AN_HOUR.into(), DENY.into()]
    } else {
        vec![ALLOW.into(), DENY.into()]
    }
}

/// What the hook tells Claude Code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow {
        reason: String,
    },
    Deny {
        reason: String,
    },
    /// Leave it to the local prompt.
    Ask {
        reason: String,
    },
}

impl Verdict {
    pub fn allow(reason: impl Into<String>) -> Verdict {
        Verdict::Allow {
            reason: reason.into(),
        }
    }

    pub fn deny(reason: impl Into<String>) -> Verdict {
        Verdict::Deny {
            reason: reason.into(),
        }
    }

    pub fn ask(reason: impl Into<String>) -> Verdict {
        Verdict::Ask {
            reason: reason.into(),
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            Verdict::Allow { reason } | Verdict::Deny { reason } | Verdict::Ask { reason } => {
                reason
            }
        }
    }

    /// The verdict on a decided pause that asked [`options`]. Anything but an Allow is a
    /// deny: no answer, a cancelled question, or still pending when the wait ends.
    pub fn of(pause: &Pause) -> Verdict {
        let by = &pause.recipient;
        match (pause.status, pause.response_choice.as_deref()) {
            (PauseStatus::Responded, Some(ALLOW)) => {
                Verdict::allow(format!("Allowed by {by} through PausePoint."))
            }
            (PauseStatus::Responded, Some(ALLOW_FOR_AN_HOUR)) => Verdict::allow(format!(
                "Allowed by {by} through PausePoint, with the same call allowed for an hour."
            )),
            (PauseStatus::Responded, _) => Verdict::deny(match &pause.response_text {
                Some(note) => format!("Denied by {by}: {note}"),
                None => format!("Denied by {by}."),
            }),
            (PauseStatus::TimedOut, _) => {
                let seconds = (pause.expires_at.as_second() - pause.created_at.as_second()).max(0);
                Verdict::deny(format!(
                    "Denied: {by} did not answer within {} (PausePoint denies when nobody answers).",
                    crate::time::short_duration(seconds)
                ))
            }
            (PauseStatus::Cancelled, _) => {
                Verdict::deny("Denied: the approval request was cancelled.")
            }
            (PauseStatus::Pending, _) => Verdict::deny("Denied: stopped waiting for the approver."),
        }
    }

    /// Whether the approver asked to allow the same call for an hour.
    pub fn remembers(pause: &Pause) -> bool {
        pause.status == PauseStatus::Responded
            && pause.response_choice.as_deref() == Some(ALLOW_FOR_AN_HOUR)
    }

    /// The JSON Claude Code reads for `event`. `tool_input` goes back unchanged as the
    /// `updatedInput` of an allowed `PermissionRequest`.
    pub fn answer(&self, event: HookEvent, tool_input: &Map<String, Value>) -> Value {
        match event {
            HookEvent::PreToolUse => {
                let decision = match self {
                    Verdict::Allow { .. } => "allow",
                    Verdict::Deny { .. } => "deny",
                    Verdict::Ask { .. } => "ask",
                };
                json!({ "hookSpecificOutput": {
                    "hookEventName": "PreToolUse",
                    "permissionDecision": decision,
                    "permissionDecisionReason": self.reason(),
                }})
            }
            HookEvent::PermissionRequest => match self {
                Verdict::Allow { .. } => json!({ "hookSpecificOutput": {
                    "hookEventName": "PermissionRequest",
                    "decision": { "behavior": "allow", "updatedInput": tool_input },
                }}),
                Verdict::Deny { reason } => json!({ "hookSpecificOutput": {
                    "hookEventName": "PermissionRequest",
                    "decision": { "behavior": "deny", "message": reason },
                }}),
                // No decision: Claude Code shows its own prompt. The message tells the
                // person why.
                Verdict::Ask { reason } => json!({ "systemMessage": reason }),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bash(command: &str, description: Option<&str>, cwd: &str) -> HookInput {
        let mut tool_input = json!({ "command": command });
        if let Some(d) = description {
            tool_input["description"] = json!(d);
        }
        HookInput::parse(
            json!({
                "session_id": "abc123",
                "transcript_path": "/home/ana/.claude/projects/x.jsonl",
                "cwd": cwd,
                "permission_mode": "default",
                "hook_event_name": "PreToolUse",
                "tool_name": "Bash",
                "tool_input": tool_input,
                "tool_use_id": "toolu_01",
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn questions_read_the_way_a_person_needs_them() {
        let input = bash(
            "rm -rf build/",
            Some("clean the build"),
            "/home/ana/work/shop",
        );
        assert_eq!(
            input.question(),
            "Claude Code wants to run Bash in ~/work/shop: `rm -rf build/` (clean the build). Allow?"
        );
        let input = bash("git push", None, "/srv/app");
        assert_eq!(
            input.question(),
            "Claude Code wants to run Bash in /srv/app: `git push`. Allow?"
        );
        let write = json!({ "file_path": "/Users/bo/x/main.rs", "content": "fn main() {}" });
        assert_eq!(
            question("Write", write.as_object().unwrap(), Some("/Users/bo")),
            "Claude Code wants to run Write in ~: /Users/bo/x/main.rs. Allow?"
        );
        let mcp = json!({ "table": "users" });
        assert_eq!(
            question("mcp__db__drop_table", mcp.as_object().unwrap(), None),
            "Claude Code wants to run the MCP tool drop_table of db: table: users. Allow?"
        );
        let long = "x".repeat(5000);
        let input = bash(&long, None, "/root");
        assert!(input.question().chars().count() < 700);
        assert!(input
            .question()
            .starts_with("Claude Code wants to run Bash in ~: `xxx"));
    }

    #[test]
    fn bad_input_says_what_is_wrong_and_which_event_it_was() {
        let error = HookInput::parse(b"{not json").unwrap_err();
        assert_eq!(error.event, None);
        assert!(error.message.contains("not JSON"), "{error}");
        let error = HookInput::parse(br#"{"hook_event_name":"Stop"}"#).unwrap_err();
        assert!(error.message.contains("\"Stop\""), "{error}");
        let error =
            HookInput::parse(br#"{"hook_event_name":"PreToolUse","tool_input":{}}"#).unwrap_err();
        assert_eq!(error.event, Some(HookEvent::PreToolUse));
        assert!(error.message.contains("tool_name"), "{error}");
        let error = HookInput::parse(
            br#"{"hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":"rm"}"#,
        )
        .unwrap_err();
        assert_eq!(error.event, Some(HookEvent::PreToolUse));
        // Fields Claude Code may add later are fine.
        let input = HookInput::parse(
            br#"{"hook_event_name":"PermissionRequest","tool_name":"Bash","tool_input":{"command":"ls"},"permission_suggestions":[{"type":"addRules"}],"future":1}"#,
        )
        .unwrap();
        assert_eq!(input.hook_event_name, HookEvent::PermissionRequest);
    }

    #[test]
    fn answers_have_claude_codes_shapes() {
        let input = bash("ls", None, "/tmp");
        assert_eq!(
            input.answer(&Verdict::deny("no")),
            json!({"hookSpecificOutput": {"hookEventName": "PreToolUse",
                "permissionDecision": "deny", "permissionDecisionReason": "no"}})
        );
        let mut request = input.clone();
        request.hook_event_name = HookEvent::PermissionRequest;
        assert_eq!(
            request.answer(&Verdict::allow("ok")),
            json!({"hookSpecificOutput": {"hookEventName": "PermissionRequest",
                "decision": {"behavior": "allow", "updatedInput": {"command": "ls"}}}})
        );
        assert_eq!(
            request.answer(&Verdict::deny("no")),
            json!({"hookSpecificOutput": {"hookEventName": "PermissionRequest",
                "decision": {"behavior": "deny", "message": "no"}}})
        );
        assert_eq!(
            request.answer(&Verdict::ask("down")),
            json!({"systemMessage": "down"})
        );
    }

    #[test]
    fn a_rule_matches_only_what_the_approver_saw() {
        let a = bash("rm -rf build/", None, "/home/ana/shop");
        assert_eq!(
            a.rule_key(),
            bash("rm -rf build/", None, "/home/ana/shop").rule_key()
        );
        // The session and tool use do not matter; the command, its description and the
        // folder do.
        let mut other_session = a.clone();
        other_session.session_id = Some("other".into());
        other_session.tool_use_id = Some("toolu_99".into());
        assert_eq!(a.rule_key(), other_session.rule_key());
        assert_ne!(
            a.rule_key(),
            bash("rm -rf build/ ", None, "/home/ana/shop").rule_key()
        );
        assert_ne!(
            a.rule_key(),
            bash("rm -rf build/", Some("x"), "/home/ana/shop").rule_key()
        );
        assert_ne!(
            a.rule_key(),
            bash("rm -rf build/", None, "/home/ana/other").rule_key()
        );
    }
}
