//! The Pause object as the API returns it, the request that creates one, and lists of them.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// Where a pause stands. `Pending` is the only state that can change, and only once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PauseStatus {
    Pending,
    Responded,
    TimedOut,
    Cancelled,
}

impl PauseStatus {
    /// The name used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            PauseStatus::Pending => "pending",
            PauseStatus::Responded => "responded",
            PauseStatus::TimedOut => "timed_out",
            PauseStatus::Cancelled => "cancelled",
        }
    }

    /// True once the pause has left `pending` for good.
    pub fn is_final(self) -> bool {
        self != PauseStatus::Pending
    }
}

impl fmt::Display for PauseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PauseStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(PauseStatus::Pending),
            "responded" => Ok(PauseStatus::Responded),
            "timed_out" => Ok(PauseStatus::TimedOut),
            "cancelled" => Ok(PauseStatus::Cancelled),
            other => Err(format!(
                "unknown status {other:?}: expected pending, responded, timed_out or cancelled"
            )),
        }
    }
}

/// How the human is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Sms,
    Email,
    Slack,
    /// A push notification to an ntfy topic URL.
    Ntfy,
}

impl Channel {
    /// The channel a recipient implies: an ntfy.sh URL is an ntfy topic, any other
    /// http(s) URL a Slack webhook, a Slack id (`C0123ABCD`) a Slack channel or user, an
    /// address with `@` is email, anything else a phone number. (A topic on a server of
    /// one's own needs the channel named.)
    pub fn infer(recipient: &str) -> Channel {
        let recipient = recipient.trim();
        if recipient.starts_with("https://ntfy.sh/") {
            Channel::Ntfy
        } else if crate::validation::is_slack_id(recipient)
            || recipient.starts_with("https://")
            || recipient.starts_with("http://")
        {
            Channel::Slack
        } else if recipient.contains('@') {
            Channel::Email
        } else {
            Channel::Sms
        }
    }

    /// The name used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Email => "email",
            Channel::Slack => "slack",
            Channel::Ntfy => "ntfy",
        }
    }
}

/// A recipient as it may be shown in logs, the audit log and tables: a Slack webhook URL
/// or an ntfy topic URL is a credential (whoever has it can post, or read), so only its
/// start is kept, `https://hooks.slack.com/services/T…/…`, `https://ntfy.sh/a…`. Phone
/// numbers and addresses show whole.
pub fn shown_recipient(channel: Channel, recipient: &str) -> String {
    // Phone numbers, addresses and Slack ids show whole: none lets anyone post.
    if !matches!(channel, Channel::Slack | Channel::Ntfy)
        || crate::validation::is_slack_id(recipient)
    {
        return recipient.to_owned();
    }
    let Ok(url) = url::Url::parse(recipient) else {
        return "…".to_owned();
    };
    let mut shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        shown.push_str(&format!(":{port}"));
    }
    if channel == Channel::Ntfy {
        // The topic is the last segment: whoever knows it reads the notifications.
        let segments: Vec<&str> = url
            .path_segments()
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .collect();
        if let Some((topic, path)) = segments.split_last() {
            for segment in path {
                shown.push('/');
                shown.push_str(segment);
            }
            shown.push('/');
            shown.extend(topic.chars().take(1));
            shown.push('…');
        }
        return shown;
    }
    let mut segments = url
        .path_segments()
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty());
    if let Some(first) = segments.next() {
        shown.push('/');
        shown.push_str(first);
    }
    if let Some(second) = segments.next() {
        shown.push('/');
        shown.extend(second.chars().take(1));
        shown.push('…');
    }
    if segments.next().is_some() {
        shown.push_str("/…");
    }
    shown
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Channel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sms" => Ok(Channel::Sms),
            "email" => Ok(Channel::Email),
            "slack" => Ok(Channel::Slack),
            "ntfy" => Ok(Channel::Ntfy),
            other => Err(format!(
                "unknown channel {other:?}: expected \"sms\", \"email\", \"slack\" or \"ntfy\""
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_urls_show_only_their_start() {
        assert_eq!(
            shown_recipient(
                Channel::Slack,
                "https://hooks.slack.com/services/T0ABCDEF/B0GHIJK/abcdefSECRET123"
            ),
            "https://hooks.slack.com/services/T…/…"
        );
        assert_eq!(
            shown_recipient(Channel::Slack, "http://127.0.0.1:9000/hook?token=secret"),
            "http://127.0.0.1:9000/hook"
        );
        assert_eq!(
            shown_recipient(Channel::Sms, "+13128471928"),
            "+13128471928"
        );
        assert_eq!(
            shown_recipient(Channel::Email, "cfo@company.com"),
            "cfo@company.com"
        );
        assert_eq!(
            shown_recipient(Channel::Ntfy, "https://ntfy.sh/approvals-7f3k"),
            "https://ntfy.sh/a…"
        );
        assert_eq!(
            shown_recipient(Channel::Ntfy, "https://push.example.com/ntfy/ops"),
            "https://push.example.com/ntfy/o…"
        );
    }
}

/// Where a notification to a human stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Not sent yet, or waiting to be tried again.
    Pending,
    /// Accepted by the provider.
    Sent,
    /// Printed on the server's console: no provider is configured for the channel.
    Logged,
    /// Given up: refused, or every retry failed.
    Failed,
    /// Not sent: the pause was decided first (or the approver had answered).
    Skipped,
    /// The provider reports it reached the phone (SMS delivery receipts).
    Delivered,
    /// Accepted, but the provider reports it never reached the phone: counts as failed.
    Undelivered,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 7] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Sent,
        DeliveryStatus::Logged,
        DeliveryStatus::Failed,
        DeliveryStatus::Skipped,
        DeliveryStatus::Delivered,
        DeliveryStatus::Undelivered,
    ];

    /// The name used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Logged => "logged",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Skipped => "skipped",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Undelivered => "undelivered",
        }
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeliveryStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DeliveryStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| format!("unknown delivery status {s:?}"))
    }
}

/// How far the notification to the human has got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Delivery {
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub last_error: Option<String>,
}

/// A pause request, exactly as `GET /v1/pause/{id}` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Pause {
    pub pause_id: Uuid,
    pub status: PauseStatus,
    pub channel: Channel,
    pub recipient: String,
    pub message: String,
    pub options: Vec<String>,
    pub allow_text_response: bool,
    pub timeout_default: Option<String>,
    /// The human's choice; on timeout the `timeout_default`; null while pending or when cancelled.
    pub response_choice: Option<String>,
    pub response_text: Option<String>,
    /// When the pause left `pending` (responded, timed out or cancelled).
    #[serde(default, with = "crate::time::millis_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub response_at: Option<Timestamp>,
    #[serde(with = "crate::time::millis")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[serde(with = "crate::time::millis")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
    pub metadata: Option<Map<String, Value>>,
    pub webhook_url: Option<String>,
    /// Null until a delivery channel has been asked to reach the human.
    pub delivery: Option<Delivery>,
    /// Once decided: a compact JWS (EdDSA) by the server's audit key over what was decided
    /// and where the decision sits in the audit chain (its claims: `ReceiptClaims` in the
    /// README's "Receipts").
    /// Left out of lists and while pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<String>,
    /// Everyone asked: the first is `recipient`; escalation tiers follow in order. Each
    /// has their own link, delivery and vote.
    #[serde(default)]
    pub approvers: Vec<Approver>,
    /// With a quorum, `quorum.option` wins at `count` votes and any other option decides
    /// at once (a veto). Without one, the first answer decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<Quorum>,
    /// Approvers who have not answered are asked again this often (at most 5 times).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remind_every_seconds: Option<u64>,
}

/// One person asked to decide, and what they did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Approver {
    pub recipient: String,
    pub channel: Channel,
    /// 0 for those asked at once; 1 and up for escalation tiers.
    pub tier: u32,
    /// When they are (or were) first sent the question.
    #[serde(with = "crate::time::millis")]
    #[schema(value_type = String, format = DateTime)]
    pub notify_at: Timestamp,
    /// Their first notice; null until it is due.
    pub delivery: Option<Delivery>,
    /// When they first opened their link.
    #[serde(default, with = "crate::time::millis_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub viewed_at: Option<Timestamp>,
    /// Their answer; null until they give one.
    pub vote: Option<Vote>,
}

/// An approver's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Vote {
    pub choice: String,
    pub text: Option<String>,
    #[serde(with = "crate::time::millis")]
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
}

/// How many votes an option needs to win.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Quorum {
    /// One of the options.
    pub option: String,
    /// Votes it needs; at most the number of approvers.
    #[schema(minimum = 1, maximum = 20)]
    pub count: u32,
}

/// One approver in a create request; the channel is inferred from the recipient when left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecipientSpec {
    /// A phone number in E.164, an email address, or a Slack incoming-webhook URL.
    #[schema(example = "+15550100")]
    pub recipient: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Channel>)]
    pub channel: Option<String>,
}

/// Who else to ask when the pause is still pending some time after its creation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EscalationTier {
    /// Seconds after creation; tiers in increasing order, each before the deadline.
    #[schema(minimum = 1, maximum = 2_592_000)]
    pub after_seconds: u64,
    #[schema(min_items = 1, max_items = 20)]
    pub recipients: Vec<RecipientSpec>,
}

/// The body of `POST /v1/pause`.
// Every field is optional in Rust so that a missing one is reported by
// `NewPause::parse` with its name, not as a JSON error; the schema says which are required.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatePause {
    /// Who answers: a phone number in E.164 (`+15550100`; spaces, dashes and parentheses
    /// are taken out), an email address, or a Slack incoming-webhook URL. Required, with
    /// `channel`, unless `recipients` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, example = "+15550100")]
    pub recipient: Option<String>,
    /// How `recipient` is reached. Required with `recipient`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Channel)]
    pub channel: Option<String>,
    /// The question the human sees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(required = true, value_type = String, min_length = 1, max_length = 2000)]
    pub message: Option<String>,
    /// The answers the human chooses from: distinct, each up to 100 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(required = true, value_type = Vec<String>, min_items = 2, max_items = 5)]
    pub options: Option<Vec<String>>,
    /// Show a field for a written note beside the options (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = bool)]
    pub allow_text_response: Option<bool>,
    /// Hours before the pause times out (default 24; at most the project's cap, 30 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = u64, minimum = 1, maximum = 720)]
    pub timeout_hours: Option<u64>,
    /// A finer alternative to `timeout_hours`; give one or the other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = u64, minimum = 1, maximum = 2_592_000)]
    pub timeout_seconds: Option<u64>,
    /// The option that applies when nobody answers in time; null for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_default: Option<String>,
    /// Any JSON object (up to 16 KiB), returned unchanged with the pause and its webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    /// An https URL to receive a signed event when the pause is decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, format = "uri")]
    pub webhook_url: Option<String>,
    /// Several approvers instead of `recipient` and `channel` (not both): 1 to 20, each
    /// with their own link and vote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Vec<RecipientSpec>, min_items = 1, max_items = 20)]
    pub recipients: Option<Vec<RecipientSpec>>,
    /// An option that needs several votes; any other option is a veto.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Quorum)]
    pub quorum: Option<Quorum>,
    /// Up to 5 tiers asked when the pause is still pending after their `after_seconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Vec<EscalationTier>, max_items = 5)]
    pub escalation: Option<Vec<EscalationTier>>,
    /// Ask approvers who have not answered again this often (at least 60; at most 5 times,
    /// never after the deadline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = u64, minimum = 60, maximum = 2_592_000)]
    pub remind_every_seconds: Option<u64>,
}

/// One page of `GET /v1/pause`, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PauseList {
    pub data: Vec<Pause>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}
