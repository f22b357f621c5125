//! The edge: a [`CreatePause`] from the wire becomes a [`NewPause`], and a human's tap
//! becomes a [`Decision`], or a [`ValidationError`] naming the field that is wrong. Code
//! behind the edge trusts these types.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use email_address::EmailAddress;
use serde_json::{Map, Value};
use url::Url;

use crate::pause::{Channel, CreatePause, EscalationTier, Quorum, RecipientSpec};
use crate::text;

/// Longest question shown to the human, in characters.
pub const MAX_MESSAGE_CHARS: usize = 2000;
/// Longest answer option, in characters: options are buttons on a phone.
pub const MAX_OPTION_CHARS: usize = 100;
/// Fewest and most answer options.
pub const MIN_OPTIONS: usize = 2;
pub const MAX_OPTIONS: usize = 5;
/// Longest free-text note a human may add, in characters.
pub const MAX_TEXT_CHARS: usize = 2000;
/// Largest `metadata` object, as compact JSON.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;
/// Longest URL accepted for `webhook_url` or a Slack recipient.
pub const MAX_URL_CHARS: usize = 2048;
/// Timeout when the request names none (the spec's 24 hours).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// Most approvers of one pause, every escalation tier included.
pub const MAX_APPROVERS: usize = 20;
/// Most escalation tiers.
pub const MAX_ESCALATION_TIERS: usize = 5;
/// Shortest interval between reminders: more often is nagging.
pub const MIN_REMIND_EVERY: Duration = Duration::from_secs(60);
/// Most reminders sent to one approver.
pub const MAX_REMINDERS: u32 = 5;

/// A request field that breaks a rule, and the rule in words a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Who the human is and how to reach them; the channel follows from the variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    /// E.164: `+` then 7 to 15 digits.
    Sms(String),
    Email(String),
    /// A Slack incoming-webhook URL.
    Slack(Url),
    /// A Slack channel or user id (`C…`, `G…`, `D…`, `U…`, `W…`), posted to by the Slack
    /// app, whose buttons decide inside Slack.
    SlackChannel(String),
    /// An ntfy topic URL: a server and, last in its path, the topic.
    Ntfy(Url),
}

impl Recipient {
    /// Checks `raw` against the rules of `channel`, normalising a phone number to E.164.
    pub fn parse(channel: Channel, raw: &str) -> Result<Recipient, ValidationError> {
        let raw = raw.trim();
        let err = |message: String| ValidationError::new("recipient", message);
        if raw.is_empty() {
            return Err(err("recipient must not be empty".into()));
        }
        match channel {
            Channel::Sms => {
                let number: String = raw
                    .chars()
                    .filter(|c| !matches!(c, ' ' | '.' | '-' | '(' | ')'))
                    .collect();
                let digits = number.strip_prefix('+').unwrap_or("");
                let valid = (7..=15).contains(&digits.len())
                    && digits.chars().all(|c| c.is_ascii_digit())
                    && !digits.starts_with('0');
                if valid {
                    Ok(Recipient::Sms(number))
                } else {
                    Err(err(format!(
                        "{raw:?} is not a phone number in E.164 form: a + then the country code and number, such as +13128471928"
                    )))
                }
            }
            Channel::Email => deliverable_email(raw).map(Recipient::Email).ok_or_else(|| {
                err(format!(
                    "{raw:?} is not an email address that can be sent to, such as cfo@company.com"
                ))
            }),
            Channel::Ntfy => {
                let url = parse_http_url("recipient", raw)?;
                let topic = url
                    .path_segments()
                    .and_then(|mut segments| segments.rfind(|s| !s.is_empty()))
                    .unwrap_or("");
                let valid_topic = !topic.is_empty()
                    && topic.len() <= 64
                    && topic
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
                if valid_topic && url.query().is_none() && url.fragment().is_none() {
                    Ok(Recipient::Ntfy(url))
                } else {
                    Err(err(format!(
                        "{raw:?} is not an ntfy topic URL: the server, then the topic (letters, digits, - and _), such as https://ntfy.sh/approvals-7f3k"
                    )))
                }
            }
            Channel::Slack if is_slack_id(raw) => Ok(Recipient::SlackChannel(raw.to_owned())),
            Channel::Slack => parse_http_url("recipient", raw)
                .map(Recipient::Slack)
                .map_err(|e| {
                    err(format!(
                        "{} (a Slack incoming webhook URL such as https://hooks.slack.com/services/..., or a channel or user id such as C0123ABCD)",
                        e.message
                    ))
                }),
        }
    }

    /// The channel this recipient is reached through.
    pub fn channel(&self) -> Channel {
        match self {
            Recipient::Sms(_) => Channel::Sms,
            Recipient::Email(_) => Channel::Email,
            Recipient::Slack(_) | Recipient::SlackChannel(_) => Channel::Slack,
            Recipient::Ntfy(_) => Channel::Ntfy,
        }
    }

    /// The recipient as stored and returned by the API.
    pub fn as_str(&self) -> &str {
        match self {
            Recipient::Sms(number) => number,
            Recipient::Email(address) => address,
            Recipient::Slack(url) | Recipient::Ntfy(url) => url.as_str(),
            Recipient::SlackChannel(id) => id,
        }
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The answer choices: 2 to 5 distinct, non-empty, trimmed strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options(Vec<String>);

impl Options {
    pub fn parse(raw: &[String]) -> Result<Options, ValidationError> {
        let err = |message: String| ValidationError::new("options", message);
        if !(MIN_OPTIONS..=MAX_OPTIONS).contains(&raw.len()) {
            return Err(err(format!(
                "give {MIN_OPTIONS} to {MAX_OPTIONS} options, not {}",
                raw.len()
            )));
        }
        let mut seen = HashSet::new();
        let mut options = Vec::with_capacity(raw.len());
        for option in raw {
            let option = text::normalize(&text::without_controls("options", option)?);
            let option = option.as_str();
            if option.is_empty() {
                return Err(err("options must not be empty strings".into()));
            }
            if option.chars().count() > MAX_OPTION_CHARS {
                return Err(err(format!(
                    "option {option:?} is longer than {MAX_OPTION_CHARS} characters"
                )));
            }
            if !seen.insert(option.to_lowercase()) {
                return Err(err(format!("option {option:?} appears twice")));
            }
            options.push(option.to_owned());
        }
        Ok(Options(options))
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    pub fn into_vec(self) -> Vec<String> {
        self.0
    }
}

/// Someone asked to decide: who, in which tier, and how long after creation they are
/// first asked (zero for tier 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApprover {
    pub recipient: Recipient,
    pub tier: u32,
    pub after: Duration,
}

/// A create request that passed every rule.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPause {
    /// Never empty, distinct, at most [`MAX_APPROVERS`]; tier 0 first, then each escalation
    /// tier in order. The first is the pause's `recipient`.
    pub approvers: Vec<NewApprover>,
    pub message: String,
    pub options: Options,
    pub allow_text_response: bool,
    pub timeout: Duration,
    /// One of `options`, or none.
    pub timeout_default: Option<String>,
    pub metadata: Option<Map<String, Value>>,
    pub webhook_url: Option<Url>,
    /// The option that needs several votes, naming one of `options`, with a count no
    /// higher than the number of approvers.
    pub quorum: Option<Quorum>,
    /// At least [`MIN_REMIND_EVERY`], shorter than the timeout.
    pub remind_every: Option<Duration>,
}

impl NewPause {
    /// Applies every rule of the API to `request`; `max_timeout` is the project's cap.
    pub fn parse(request: CreatePause, max_timeout: Duration) -> Result<NewPause, ValidationError> {
        let mut approvers = first_tier(request.recipient, request.channel, request.recipients)?;
        let message = text::without_controls("message", &required(request.message, "message")?)?;
        let length = message.chars().count();
        if !text::has_visible(&message) {
            return Err(ValidationError::new(
                "message",
                "message must not be empty (or only invisible characters)",
            ));
        }
        if length > MAX_MESSAGE_CHARS {
            return Err(ValidationError::new(
                "message",
                format!("message is {length} characters; the limit is {MAX_MESSAGE_CHARS}"),
            ));
        }

        let options = Options::parse(&required(request.options, "options")?)?;

        let timeout = match (request.timeout_hours, request.timeout_seconds) {
            (Some(_), Some(_)) => {
                return Err(ValidationError::new(
                    "timeout_seconds",
                    "give timeout_hours or timeout_seconds, not both",
                ))
            }
            (Some(hours), None) => {
                timeout_within("timeout_hours", hours.saturating_mul(3600), max_timeout)?
            }
            (None, Some(seconds)) => timeout_within("timeout_seconds", seconds, max_timeout)?,
            (None, None) => DEFAULT_TIMEOUT.min(max_timeout),
        };

        let timeout_default = match request.timeout_default {
            None => None,
            Some(default) => {
                let default = text::normalize(&default);
                match options.as_slice().iter().find(|o| **o == default) {
                    Some(option) => Some(option.clone()),
                    None => {
                        return Err(ValidationError::new(
                            "timeout_default",
                            format!(
                                "timeout_default {default:?} is not one of the options {:?}",
                                options.as_slice()
                            ),
                        ))
                    }
                }
            }
        };

        let metadata = match request.metadata {
            None | Some(Value::Null) => None,
            Some(Value::Object(map)) => {
                let size = Value::Object(map.clone()).to_string().len();
                if size > MAX_METADATA_BYTES {
                    return Err(ValidationError::new(
                        "metadata",
                        format!(
                            "metadata is {size} bytes of JSON; the limit is {MAX_METADATA_BYTES}"
                        ),
                    ));
                }
                Some(map)
            }
            Some(_) => {
                return Err(ValidationError::new(
                    "metadata",
                    "metadata must be a JSON object, such as {\"run_id\": \"abc\"}",
                ))
            }
        };

        let webhook_url = request
            .webhook_url
            .map(|url| parse_http_url("webhook_url", url.trim()))
            .transpose()?;

        if let Some(tiers) = request.escalation {
            approvers.extend(escalation(&tiers, timeout, approvers.len())?);
        }
        distinct(&approvers)?;

        let quorum = request
            .quorum
            .map(|quorum| parse_quorum(quorum, &options, approvers.len()))
            .transpose()?;

        let remind_every = match request.remind_every_seconds {
            None => None,
            Some(seconds) => {
                let every = Duration::from_secs(seconds);
                if every < MIN_REMIND_EVERY {
                    return Err(ValidationError::new(
                        "remind_every_seconds",
                        format!(
                            "remind_every_seconds must be at least {}, not {seconds}",
                            MIN_REMIND_EVERY.as_secs()
                        ),
                    ));
                }
                if every >= timeout {
                    return Err(ValidationError::new(
                        "remind_every_seconds",
                        format!(
                            "a reminder every {seconds} seconds would never be sent: the pause times out after {} seconds",
                            timeout.as_secs()
                        ),
                    ));
                }
                Some(every)
            }
        };

        Ok(NewPause {
            approvers,
            message,
            options,
            allow_text_response: request.allow_text_response.unwrap_or(false),
            timeout,
            timeout_default,
            metadata,
            webhook_url,
            quorum,
            remind_every,
        })
    }

    /// The first approver: the pause's `recipient`.
    pub fn recipient(&self) -> &Recipient {
        &self.approvers[0].recipient
    }

    /// How the first approver is reached: the pause's `channel`.
    pub fn channel(&self) -> Channel {
        self.recipient().channel()
    }
}

/// Tier 0: `recipient` with `channel` (the original form), or `recipients`; not both.
fn first_tier(
    recipient: Option<String>,
    channel: Option<String>,
    recipients: Option<Vec<RecipientSpec>>,
) -> Result<Vec<NewApprover>, ValidationError> {
    let Some(recipients) = recipients else {
        let channel: Channel = required(channel, "channel")?
            .trim()
            .parse()
            .map_err(|message: String| ValidationError::new("channel", message))?;
        let recipient = Recipient::parse(channel, &required(recipient, "recipient")?)?;
        return Ok(vec![NewApprover {
            recipient,
            tier: 0,
            after: Duration::ZERO,
        }]);
    };
    if recipient.is_some() || channel.is_some() {
        return Err(ValidationError::new(
            "recipients",
            "give recipient and channel, or recipients (each with its own channel), not both",
        ));
    }
    if recipients.is_empty() || recipients.len() > MAX_APPROVERS {
        return Err(ValidationError::new(
            "recipients",
            format!(
                "give 1 to {MAX_APPROVERS} recipients, not {}",
                recipients.len()
            ),
        ));
    }
    recipients
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            Ok(NewApprover {
                recipient: parse_spec(&format!("recipients[{i}]"), spec)?,
                tier: 0,
                after: Duration::ZERO,
            })
        })
        .collect()
}

/// The approvers of the escalation tiers, after the `already` of tier 0.
fn escalation(
    tiers: &[EscalationTier],
    timeout: Duration,
    already: usize,
) -> Result<Vec<NewApprover>, ValidationError> {
    if tiers.len() > MAX_ESCALATION_TIERS {
        return Err(ValidationError::new(
            "escalation",
            format!(
                "give at most {MAX_ESCALATION_TIERS} escalation tiers, not {}",
                tiers.len()
            ),
        ));
    }
    let total = already + tiers.iter().map(|t| t.recipients.len()).sum::<usize>();
    if total > MAX_APPROVERS {
        return Err(ValidationError::new(
            "escalation",
            format!("{total} approvers in all; the limit is {MAX_APPROVERS}, every tier together"),
        ));
    }
    let mut approvers = Vec::new();
    let mut previous = 0;
    for (t, tier) in tiers.iter().enumerate() {
        let field = format!("escalation[{t}].after_seconds");
        let after = tier.after_seconds;
        if after == 0 {
            return Err(ValidationError::new(
                field,
                "after_seconds must be at least 1",
            ));
        }
        if after <= previous {
            return Err(ValidationError::new(
                field,
                format!(
                    "escalation tiers go in increasing order of after_seconds: {after} does not come after {previous}"
                ),
            ));
        }
        if Duration::from_secs(after) >= timeout {
            return Err(ValidationError::new(
                field,
                format!(
                    "after {after} seconds the pause has already timed out (after {} seconds)",
                    timeout.as_secs()
                ),
            ));
        }
        previous = after;
        if tier.recipients.is_empty() {
            return Err(ValidationError::new(
                format!("escalation[{t}].recipients"),
                "an escalation tier needs at least one recipient",
            ));
        }
        for (i, spec) in tier.recipients.iter().enumerate() {
            approvers.push(NewApprover {
                recipient: parse_spec(&format!("escalation[{t}].recipients[{i}]"), spec)?,
                tier: u32::try_from(t + 1).unwrap_or(u32::MAX),
                after: Duration::from_secs(after),
            });
        }
    }
    Ok(approvers)
}

/// One entry of a `recipients` list; its channel is inferred when not given.
fn parse_spec(field: &str, spec: &RecipientSpec) -> Result<Recipient, ValidationError> {
    let channel = match &spec.channel {
        Some(channel) => channel
            .trim()
            .parse()
            .map_err(|message: String| ValidationError::new(format!("{field}.channel"), message))?,
        None => Channel::infer(&spec.recipient),
    };
    Recipient::parse(channel, &spec.recipient)
        .map_err(|e| ValidationError::new(format!("{field}.recipient"), e.message))
}

/// Nobody is asked twice, however they were spelled.
fn distinct(approvers: &[NewApprover]) -> Result<(), ValidationError> {
    let mut seen = HashSet::new();
    for (i, approver) in approvers.iter().enumerate() {
        let key = (
            approver.recipient.channel(),
            approver.recipient.as_str().to_lowercase(),
        );
        if !seen.insert(key) {
            let tier_start = approvers
                .iter()
                .position(|a| a.tier == approver.tier)
                .unwrap_or(0);
            let field = if approver.tier == 0 {
                format!("recipients[{i}].recipient")
            } else {
                format!(
                    "escalation[{}].recipients[{}].recipient",
                    approver.tier - 1,
                    i - tier_start
                )
            };
            return Err(ValidationError::new(
                field,
                format!(
                    "{} is listed twice: each approver has one vote",
                    crate::pause::shown_recipient(
                        approver.recipient.channel(),
                        approver.recipient.as_str()
                    )
                ),
            ));
        }
    }
    Ok(())
}

fn parse_quorum(
    quorum: Quorum,
    options: &Options,
    approvers: usize,
) -> Result<Quorum, ValidationError> {
    let wanted = text::normalize(&quorum.option);
    let Some(option) = options.as_slice().iter().find(|o| **o == wanted) else {
        return Err(ValidationError::new(
            "quorum.option",
            format!(
                "{:?} is not one of the options {:?}",
                quorum.option,
                options.as_slice()
            ),
        ));
    };
    if quorum.count == 0 {
        return Err(ValidationError::new(
            "quorum.count",
            "quorum.count must be at least 1",
        ));
    }
    if quorum.count as usize > approvers {
        return Err(ValidationError::new(
            "quorum.count",
            format!(
                "{} votes can never be reached: {approvers} approver{} asked, every tier together",
                quorum.count,
                if approvers == 1 { " is" } else { "s are" }
            ),
        ));
    }
    Ok(Quorum {
        option: option.clone(),
        count: quorum.count,
    })
}

/// A human's answer to a pause, checked against what the pause offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub choice: String,
    pub text: Option<String>,
}

impl Decision {
    /// `choice` must be one of `options`; a non-empty `text` only when the pause allows it.
    pub fn parse(
        options: &[String],
        allow_text_response: bool,
        choice: &str,
        text: Option<&str>,
    ) -> Result<Decision, ValidationError> {
        let normalized = text::normalize(choice);
        let Some(choice) = options.iter().find(|o| **o == normalized) else {
            return Err(ValidationError::new(
                "choice",
                format!("{choice:?} is not one of the options {options:?}"),
            ));
        };
        let text = text
            .map(|t| text::without_controls("text", t))
            .transpose()?;
        let text = text
            .as_deref()
            .map(str::trim)
            .filter(|t| text::has_visible(t));
        if let Some(text) = text {
            if !allow_text_response {
                return Err(ValidationError::new(
                    "text",
                    "this pause does not accept a written note",
                ));
            }
            if text.chars().count() > MAX_TEXT_CHARS {
                return Err(ValidationError::new(
                    "text",
                    format!("the note is longer than {MAX_TEXT_CHARS} characters"),
                ));
            }
        }
        Ok(Decision {
            choice: choice.clone(),
            text: text.map(str::to_owned),
        })
    }
}

/// A Slack conversation or user id: `C`, `G` or `D` (channels and conversations) or `U`
/// or `W` (users), then upper-case letters and digits.
pub fn is_slack_id(raw: &str) -> bool {
    let mut chars = raw.chars();
    matches!(chars.next(), Some('C' | 'G' | 'D' | 'U' | 'W'))
        && (8..=20).contains(&raw.len())
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// `raw` as an address a mail server takes without extensions: a dot-atom local part in
/// ASCII, and a domain name (never an address literal) in ASCII, international names as
/// punycode. None when it cannot be sent as such.
fn deliverable_email(raw: &str) -> Option<String> {
    let (local, domain) = raw.rsplit_once('@')?;
    if local.is_empty() || !local.is_ascii() || local.starts_with('"') || domain.starts_with('[') {
        return None;
    }
    let domain = idna::domain_to_ascii(domain).ok()?;
    if !domain.contains('.') || domain.ends_with('.') {
        return None;
    }
    let address = format!("{local}@{domain}");
    let parsed = address.parse::<EmailAddress>().ok()?;
    (parsed.email() == address).then_some(address)
}

fn required<T>(value: Option<T>, field: &str) -> Result<T, ValidationError> {
    value.ok_or_else(|| ValidationError::new(field, format!("{field} is required")))
}

fn timeout_within(field: &str, seconds: u64, max: Duration) -> Result<Duration, ValidationError> {
    if seconds == 0 {
        return Err(ValidationError::new(
            field,
            format!("{field} must be at least 1"),
        ));
    }
    let timeout = Duration::from_secs(seconds);
    if timeout > max {
        return Err(ValidationError::new(
            field,
            format!(
                "the timeout of {seconds} seconds is longer than this project's limit of {} seconds ({} days)",
                max.as_secs(),
                max.as_secs() / 86_400
            ),
        ));
    }
    Ok(timeout)
}

fn parse_http_url(field: &str, raw: &str) -> Result<Url, ValidationError> {
    let err = |message: String| ValidationError::new(field, message);
    if raw.len() > MAX_URL_CHARS {
        return Err(err(format!(
            "the URL is longer than {MAX_URL_CHARS} characters"
        )));
    }
    let url = Url::parse(raw).map_err(|e| err(format!("{raw:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(err(format!("{raw:?} is not an http(s) URL")));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> CreatePause {
        CreatePause {
            recipient: Some("+1 (312) 847-1928".into()),
            channel: Some("sms".into()),
            message: Some("Wire $8,400 to Meridian?".into()),
            options: Some(vec!["Approve".into(), "Reject".into()]),
            ..CreatePause::default()
        }
    }

    const CAP: Duration = Duration::from_secs(30 * 86_400);

    #[test]
    fn phone_numbers_are_normalised_to_e164() {
        let pause = NewPause::parse(request(), CAP).unwrap();
        assert_eq!(pause.recipient().as_str(), "+13128471928");
        assert_eq!(pause.timeout, DEFAULT_TIMEOUT);
        for bad in [
            "3128471928",
            "+0123456789",
            "+1",
            "+1312abc1928",
            "+1234567890123456",
        ] {
            let err = Recipient::parse(Channel::Sms, bad).unwrap_err();
            assert_eq!(err.field, "recipient", "{bad}");
        }
    }

    #[test]
    fn email_and_slack_recipients() {
        assert!(Recipient::parse(Channel::Email, "cfo@company.com").is_ok());
        assert_eq!(
            Recipient::parse(Channel::Email, "anna@münchen.de")
                .unwrap()
                .as_str(),
            "anna@xn--mnchen-3ya.de",
            "an international domain is sent as punycode"
        );
        for bad in [
            "cfo",
            "cfo@",
            "CFO <cfo@company.com>",
            "cfo@localhost",
            "a b@c.com",
            "\"a b\"@example.com",
            "a@[127.0.0.1]",
            "jürgen@example.com",
        ] {
            assert!(Recipient::parse(Channel::Email, bad).is_err(), "{bad}");
        }
        assert!(Recipient::parse(Channel::Slack, "https://hooks.slack.com/services/T/B/x").is_ok());
        assert_eq!(
            Recipient::parse(Channel::Slack, "C0123ABCD").unwrap(),
            Recipient::SlackChannel("C0123ABCD".into())
        );
        assert!(Recipient::parse(Channel::Slack, "U0APPROVER").is_ok());
        assert!(Recipient::parse(Channel::Slack, "c0123abcd").is_err());
        for bad in ["hooks.slack.com", "ftp://x.com/a", "https://"] {
            assert!(Recipient::parse(Channel::Slack, bad).is_err(), "{bad}");
        }
        assert!(Recipient::parse(Channel::Ntfy, "https://ntfy.sh/approvals-7f3k").is_ok());
        for bad in [
            "https://ntfy.sh/",
            "https://ntfy.sh/a b",
            "https://ntfy.sh/topic?x=1",
            "ntfy.sh/topic",
        ] {
            assert!(Recipient::parse(Channel::Ntfy, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn recipients_imply_their_channel() {
        assert_eq!(Channel::infer("+1 (312) 847-1928"), Channel::Sms);
        assert_eq!(Channel::infer("ops@example.com"), Channel::Email);
        assert_eq!(
            Channel::infer("https://hooks.slack.com/services/T/B/X"),
            Channel::Slack
        );
        assert_eq!(Channel::infer("C0123ABCD"), Channel::Slack);
        assert_eq!(Channel::infer("https://ntfy.sh/approvals"), Channel::Ntfy);
    }

    #[test]
    fn options_rules() {
        let parse =
            |v: &[&str]| Options::parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert!(parse(&["A"]).is_err());
        assert!(parse(&["A", "B", "C", "D", "E", "F"]).is_err());
        assert!(parse(&["A", " "]).is_err());
        assert!(parse(&["Yes", "yes"]).is_err());
        assert!(
            parse(&["Approve", "Approve\u{200b}"]).is_err(),
            "invisible differences"
        );
        assert!(
            parse(&["Approve", "Ａｐｐｒｏｖｅ"]).is_err(),
            "full-width forms"
        );
        assert!(parse(&["A\u{7}", "B"]).is_err(), "control characters");
        assert_eq!(parse(&[" A ", "B\u{200b}"]).unwrap().as_slice(), ["A", "B"]);
    }

    #[test]
    fn timeouts() {
        let mut r = request();
        r.timeout_seconds = Some(90);
        assert_eq!(
            NewPause::parse(r.clone(), CAP).unwrap().timeout,
            Duration::from_secs(90)
        );
        r.timeout_hours = Some(1);
        assert_eq!(
            NewPause::parse(r, CAP).unwrap_err().field,
            "timeout_seconds"
        );
        let mut r = request();
        r.timeout_hours = Some(24 * 31);
        assert_eq!(NewPause::parse(r, CAP).unwrap_err().field, "timeout_hours");
        let mut r = request();
        r.timeout_seconds = Some(0);
        assert_eq!(
            NewPause::parse(r, CAP).unwrap_err().field,
            "timeout_seconds"
        );
    }

    #[test]
    fn decisions() {
        let options = vec!["Approve".to_string(), "Reject".to_string()];
        assert!(Decision::parse(&options, false, "Approve", None).is_ok());
        assert_eq!(
            Decision::parse(&options, false, "Maybe", None)
                .unwrap_err()
                .field,
            "choice"
        );
        assert_eq!(
            Decision::parse(&options, false, "Approve", Some("why"))
                .unwrap_err()
                .field,
            "text"
        );
        let ok = Decision::parse(&options, true, "Reject", Some("  too much ")).unwrap();
        assert_eq!(ok.text.as_deref(), Some("too much"));
        assert_eq!(
            Decision::parse(&options, false, "Approve", Some("  "))
                .unwrap()
                .text,
            None
        );
        let windows = Decision::parse(&options, true, "Approve", Some("line\r\nnext")).unwrap();
        assert_eq!(windows.text.as_deref(), Some("line\nnext"));
        assert_eq!(
            Decision::parse(&options, true, "Approve", Some("bell\u{7}"))
                .unwrap_err()
                .field,
            "text"
        );
        assert_eq!(
            Decision::parse(&options, false, "Approve\u{200b}", None)
                .unwrap()
                .choice,
            "Approve"
        );
    }

    #[test]
    fn a_message_needs_visible_characters_and_no_controls() {
        let mut r = request();
        r.message = Some("\u{200b}\u{200b} ".into());
        assert_eq!(NewPause::parse(r, CAP).unwrap_err().field, "message");
        let mut r = request();
        r.message = Some("Deploy?\u{1b}[2J".into());
        assert_eq!(NewPause::parse(r, CAP).unwrap_err().field, "message");
        let mut r = request();
        r.message = Some("Line one\r\nLine two\twith a tab".into());
        assert_eq!(
            NewPause::parse(r, CAP).unwrap().message,
            "Line one\nLine two\twith a tab"
        );
    }

    fn spec(recipient: &str) -> RecipientSpec {
        RecipientSpec {
            recipient: recipient.into(),
            channel: None,
        }
    }

    fn several() -> CreatePause {
        CreatePause {
            recipient: None,
            channel: None,
            recipients: Some(vec![spec("a@example.com"), spec("+1 312 847 1928")]),
            timeout_seconds: Some(3600),
            ..request()
        }
    }

    fn field_of(request: CreatePause) -> String {
        NewPause::parse(request, CAP).unwrap_err().field
    }

    #[test]
    fn several_approvers_with_a_quorum_escalation_and_reminders() {
        let mut r = several();
        r.quorum = Some(Quorum {
            option: "Approve".into(),
            count: 3,
        });
        r.escalation = Some(vec![EscalationTier {
            after_seconds: 1800,
            recipients: vec![spec("boss@example.com")],
        }]);
        r.remind_every_seconds = Some(900);
        let pause = NewPause::parse(r, CAP).unwrap();
        let shown: Vec<(&str, u32, u64)> = pause
            .approvers
            .iter()
            .map(|a| (a.recipient.as_str(), a.tier, a.after.as_secs()))
            .collect();
        assert_eq!(
            shown,
            [
                ("a@example.com", 0, 0),
                ("+13128471928", 0, 0),
                ("boss@example.com", 1, 1800)
            ]
        );
        assert_eq!(pause.channel(), Channel::Email);
        assert_eq!(pause.quorum.unwrap().count, 3);
        assert_eq!(pause.remind_every, Some(Duration::from_secs(900)));
    }

    #[test]
    fn each_rule_of_several_approvers_names_its_field() {
        let mut r = several();
        r.recipient = Some("+13128471928".into());
        assert_eq!(field_of(r), "recipients");

        let mut r = several();
        r.recipients = Some(vec![]);
        assert_eq!(field_of(r), "recipients");

        let mut r = several();
        r.recipients = Some(
            (0..21)
                .map(|i| spec(&format!("p{i}@example.com")))
                .collect(),
        );
        assert_eq!(field_of(r), "recipients");

        let mut r = several();
        r.escalation = Some(vec![EscalationTier {
            after_seconds: 60,
            recipients: (0..19)
                .map(|i| spec(&format!("e{i}@example.com")))
                .collect(),
        }]);
        assert_eq!(field_of(r), "escalation");

        let mut r = several();
        r.recipients = Some(vec![spec("A@Example.com"), spec("a@example.com")]);
        assert_eq!(field_of(r), "recipients[1].recipient");

        let mut r = several();
        r.escalation = Some(vec![EscalationTier {
            after_seconds: 60,
            recipients: vec![spec("b@example.com"), spec("+1 (312) 847-1928")],
        }]);
        assert_eq!(field_of(r), "escalation[0].recipients[1].recipient");

        let mut r = several();
        r.recipients = Some(vec![RecipientSpec {
            recipient: "a@example.com".into(),
            channel: Some("sms".into()),
        }]);
        assert_eq!(field_of(r), "recipients[0].recipient");

        let mut r = several();
        r.quorum = Some(Quorum {
            option: "Maybe".into(),
            count: 1,
        });
        assert_eq!(field_of(r), "quorum.option");

        let mut r = several();
        r.quorum = Some(Quorum {
            option: "Approve".into(),
            count: 3,
        });
        assert_eq!(field_of(r), "quorum.count");

        let mut r = several();
        r.quorum = Some(Quorum {
            option: "Approve".into(),
            count: 0,
        });
        assert_eq!(field_of(r), "quorum.count");

        let tier = |after| EscalationTier {
            after_seconds: after,
            recipients: vec![spec(&format!("t{after}@example.com"))],
        };
        let mut r = several();
        r.escalation = Some(vec![tier(600), tier(300)]);
        assert_eq!(field_of(r), "escalation[1].after_seconds");

        let mut r = several();
        r.escalation = Some(vec![tier(3600)]);
        assert_eq!(
            field_of(r),
            "escalation[0].after_seconds",
            "past the deadline"
        );

        let mut r = several();
        r.escalation = Some((1..=6).map(|i| tier(i * 60)).collect());
        assert_eq!(field_of(r), "escalation");

        let mut r = several();
        r.remind_every_seconds = Some(59);
        assert_eq!(field_of(r), "remind_every_seconds");

        let mut r = several();
        r.remind_every_seconds = Some(3600);
        assert_eq!(field_of(r), "remind_every_seconds", "never sent");
    }
}
