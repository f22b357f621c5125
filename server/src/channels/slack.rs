//! Slack: Block Kit posted to the recipient's incoming-webhook URL, a URL button per option.

use serde_json::{json, Value};

use super::pace::Rate;
use super::Notice;
use crate::domain::projects;
use crate::work::outcome::{provider_verdict, SendOutcome, Verdict};
use crate::{outbound, views};

/// Slack's limit on a button's text.
const MAX_BUTTON_CHARS: usize = 75;
/// The most of Slack's answer kept (and read).
const ANSWER_BYTES: usize = 200;
/// Slack's documented rate for posting messages: one a second per webhook, short bursts
/// allowed.
pub const RATE: Rate = Rate {
    per_second: 1.0,
    burst: 4.0,
};

/// Posts to incoming-webhook URLs, which API callers choose: through the guarded client.
pub struct Slack {
    http: reqwest::Client,
    policy: outbound::Policy,
    lookup: outbound::Lookup,
}

impl Slack {
    pub fn new(policy: &outbound::Policy, lookup: outbound::Lookup) -> Result<Slack, String> {
        Ok(Slack {
            http: outbound::client(policy, lookup.clone())?,
            policy: policy.clone(),
            lookup,
        })
    }

    pub async fn send(&self, notice: &Notice<'_>) -> SendOutcome {
        let url = match url::Url::parse(&notice.pause.recipient) {
            Ok(url) => url,
            Err(e) => {
                return SendOutcome::Refused {
                    error: format!("Slack: {e}"),
                }
            }
        };
        if let Err(error) = outbound::check_through_proxy(&url, &self.policy, &self.lookup).await {
            return SendOutcome::Refused { error };
        }
        send(&self.http, url, notice).await
    }
}

async fn send(http: &reqwest::Client, url: url::Url, notice: &Notice<'_>) -> SendOutcome {
    let response = http.post(url).json(&blocks(notice)).send().await;
    let response = match response {
        Ok(response) => response,
        Err(e) => {
            return SendOutcome::RetryLater {
                error: format!("Slack: {}", outbound::describe(&e)),
                after: None,
            }
        }
    };
    let status = response.status();
    if status.is_success() {
        return SendOutcome::Delivered {
            via: "slack",
            reference: None,
        };
    }
    let after = outbound::retry_after(&response, notice.now);
    let (text, _) = outbound::read_capped(response, ANSWER_BYTES).await;
    let error = format!("Slack answered {status}: {text}");
    match provider_verdict(status.as_u16()) {
        Verdict::Transient => SendOutcome::RetryLater { error, after },
        Verdict::Accepted | Verdict::Permanent => SendOutcome::Refused { error },
    }
}

/// The message: the question, a button per option, and who asks; `text` is the fallback
/// shown in notifications.
pub fn blocks(notice: &Notice<'_>) -> Value {
    let pause = notice.pause;
    let buttons: Vec<Value> = pause
        .options
        .iter()
        .enumerate()
        .map(|(i, option)| {
            let mut label: String = option.chars().take(MAX_BUTTON_CHARS).collect();
            if option.chars().count() > MAX_BUTTON_CHARS {
                label.pop();
                label.push('…');
            }
            json!({
                "type": "button",
                "action_id": format!("pausepoint_option_{i}"),
                "text": { "type": "plain_text", "text": label },
                "url": views::choice_link(&notice.link, option),
            })
        })
        .collect();
    json!({
        "text": format!("Decision needed: {} {}", escape(&pause.message), notice.link),
        "blocks": [
            { "type": "section", "text": { "type": "mrkdwn", "text": escape(&pause.message) } },
            { "type": "actions", "elements": buttons },
            { "type": "context", "elements": [{
                "type": "mrkdwn",
                "text": context(notice),
            }]},
        ],
    })
}

/// Who asks (when the project has a name), the time left, and what happens then.
fn context(notice: &Notice<'_>) -> String {
    let pause = notice.pause;
    let left = format!(
        "{} left",
        views::human_duration(pause.expires_at.duration_since(notice.now))
    );
    let parts: Vec<String> = projects::shown_name(notice.project)
        .map(|project| format!("Asked by {}", escape(project)))
        .into_iter()
        .chain([left, escape(&views::if_nobody_answers_text(pause))])
        .collect();
    parts.join(" · ")
}

/// Slack's mrkdwn treats `&`, `<` and `>` as markup.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
