//! Slack, two ways. To an incoming-webhook URL: Block Kit with a URL button per option,
//! which opens the page. To a channel or user id, through the Slack app (`chat.postMessage`
//! with the bot token): buttons that decide inside Slack, each carrying the approver's link
//! token and the option; the click comes back to `/v1/inbound/slack`, signed by Slack
//! ([`signature_valid`]), and the message is updated in place ([`SlackApp::update`]).

use hmac::{Hmac, Mac};
use pausepoint_api::validation::is_slack_id;
use serde_json::{json, Value};
use sha2::Sha256;

use super::pace::Rate;
use super::Notice;
use crate::config::SlackAppConfig;
use crate::domain::projects;
use crate::work::outcome::{provider_verdict, SendOutcome, Verdict};
use crate::{outbound, views};

/// Slack's limit on a button's text.
const MAX_BUTTON_CHARS: usize = 75;
/// The most of Slack's answer kept (and read).
const ANSWER_BYTES: usize = 200;
/// The most of a Web API answer read: its JSON is well under this.
const APP_ANSWER_BYTES: usize = 16 * 1024;
/// Slack's documented rate for posting messages: one a second per webhook, short bursts
/// allowed.
pub const RATE: Rate = Rate {
    per_second: 1.0,
    burst: 4.0,
};

/// Posts to incoming-webhook URLs, which API callers choose: through the guarded client.
/// And to channel ids through the app, when one is configured.
pub struct Slack {
    http: reqwest::Client,
    policy: outbound::Policy,
    lookup: outbound::Lookup,
    app: Option<SlackApp>,
}

/// The Slack app's Web API client.
pub struct SlackApp {
    http: reqwest::Client,
    config: SlackAppConfig,
}

impl Slack {
    pub fn new(
        policy: &outbound::Policy,
        lookup: outbound::Lookup,
        app: Option<SlackApp>,
    ) -> Result<Slack, String> {
        Ok(Slack {
            http: outbound::client(policy, lookup.clone())?,
            policy: policy.clone(),
            lookup,
            app,
        })
    }

    pub fn app(&self) -> Option<&SlackApp> {
        self.app.as_ref()
    }

    pub async fn send(&self, notice: &Notice<'_>) -> SendOutcome {
        if is_slack_id(&notice.pause.recipient) {
            return match &self.app {
                Some(app) => app.post(notice).await,
                None => SendOutcome::Refused {
                    error: "Slack: a channel or user id needs the Slack app (--slack-bot-token)"
                        .into(),
                },
            };
        }
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

impl SlackApp {
    /// The app of `config`, on the provider client (its API address is the operator's).
    pub fn new(config: SlackAppConfig, policy: &outbound::Policy) -> Result<SlackApp, String> {
        Ok(SlackApp {
            http: outbound::provider_client(policy)?,
            config,
        })
    }

    /// Whether `signature` (`X-Slack-Signature`) is Slack's for `body` sent at `timestamp`
    /// (`X-Slack-Request-Timestamp`).
    pub fn signature_valid(&self, timestamp: &str, body: &[u8], signature: &str) -> bool {
        signature_valid(
            self.config.signing_secret.expose(),
            timestamp,
            body,
            signature,
        )
    }

    /// `chat.postMessage`: the question with a button per option that decides in Slack.
    async fn post(&self, notice: &Notice<'_>) -> SendOutcome {
        let mut message = interactive_blocks(notice);
        message["channel"] = json!(notice.pause.recipient);
        match self.call("chat.postMessage", &message, notice.now).await {
            Ok(answer) => SendOutcome::Delivered {
                via: "slack app",
                reference: answer["ts"]
                    .as_str()
                    .map(|ts| format!("{}/{ts}", answer["channel"].as_str().unwrap_or(""))),
            },
            Err(outcome) => outcome,
        }
    }

    /// `chat.update`: the message `ts` in `channel` keeps its question (`question`, the
    /// mrkdwn it was posted with) and now says `text` instead of its buttons.
    pub async fn update(
        &self,
        channel: &str,
        ts: &str,
        text: &str,
        question: &str,
    ) -> Result<(), String> {
        let message = json!({
            "channel": channel,
            "ts": ts,
            "text": text,
            "blocks": [
                { "type": "section", "text": { "type": "mrkdwn", "text": question } },
                { "type": "context", "elements": [{ "type": "mrkdwn", "text": text }] },
            ],
        });
        match self
            .call("chat.update", &message, jiff::Timestamp::now())
            .await
        {
            Ok(_) => Ok(()),
            Err(outcome) => Err(outcome
                .error()
                .unwrap_or("Slack refused the update")
                .to_owned()),
        }
    }

    /// A Web API method: its answer when `ok`, else the outcome that says why not.
    async fn call(
        &self,
        method: &str,
        body: &Value,
        now: jiff::Timestamp,
    ) -> Result<Value, SendOutcome> {
        let url = format!("{}/{method}", self.config.api_url.trim_end_matches('/'));
        let response = self
            .http
            .post(url)
            .bearer_auth(self.config.bot_token.expose())
            .json(body)
            .send()
            .await;
        let response = match response {
            Ok(response) => response,
            Err(e) => {
                return Err(SendOutcome::RetryLater {
                    error: format!("Slack: {}", outbound::describe(&e)),
                    after: None,
                })
            }
        };
        let status = response.status();
        let after = outbound::retry_after(&response, now);
        let (text, _) = outbound::read_capped(response, APP_ANSWER_BYTES).await;
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() && answer["ok"] == true {
            return Ok(answer);
        }
        let error = match answer["error"].as_str() {
            Some(code) => format!("Slack {method}: {code}"),
            None => format!("Slack {method} answered {status}"),
        };
        if answer["error"] == "ratelimited" {
            return Err(SendOutcome::RetryLater { error, after });
        }
        Err(match provider_verdict(status.as_u16()) {
            Verdict::Transient => SendOutcome::RetryLater { error, after },
            Verdict::Accepted | Verdict::Permanent => SendOutcome::Refused { error },
        })
    }
}

/// The message for the app: buttons whose value is the approver's link token and the
/// option's number, and the link as the fallback.
pub fn interactive_blocks(notice: &Notice<'_>) -> Value {
    let pause = notice.pause;
    let token = notice.link.rsplit('/').next().unwrap_or("");
    let buttons: Vec<Value> = pause
        .options
        .iter()
        .enumerate()
        .map(|(i, option)| {
            json!({
                "type": "button",
                "action_id": format!("pausepoint_vote_{i}"),
                "text": { "type": "plain_text", "text": button_label(option) },
                "value": format!("{token}.{i}"),
            })
        })
        .collect();
    json!({
        "text": format!("Decision needed: {}", escape(&pause.message)),
        "blocks": [
            { "type": "section", "text": { "type": "mrkdwn", "text": escape(&pause.message) } },
            { "type": "actions", "block_id": "pausepoint_vote", "elements": buttons },
            { "type": "context", "elements": [{
                "type": "mrkdwn",
                "text": format!("{} · <{}|Open the page>", context(notice), notice.link),
            }]},
        ],
    })
}

/// A button's text within Slack's limit.
fn button_label(option: &str) -> String {
    let mut label: String = option.chars().take(MAX_BUTTON_CHARS).collect();
    if option.chars().count() > MAX_BUTTON_CHARS {
        label.pop();
        label.push('…');
    }
    label
}

/// A button's value: the link token and the option's number.
pub fn parse_value(value: &str) -> Option<(&str, usize)> {
    let (token, index) = value.rsplit_once('.')?;
    Some((token, index.parse().ok()?))
}

/// Whether `signature` is `v0=` and the hex HMAC-SHA256, keyed by the signing secret, of
/// `v0:{timestamp}:{body}`, compared in constant time.
pub fn signature_valid(secret: &str, timestamp: &str, body: &[u8], signature: &str) -> bool {
    let Some(given) = signature
        .strip_prefix("v0=")
        .and_then(|hex| hex::decode(hex).ok())
    else {
        return false;
    };
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    mac.verify_slice(&given).is_ok()
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
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slack's own example of a signed request (docs, "Verifying requests from Slack").
    #[test]
    fn the_documented_example_signature_verifies() {
        let body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let secret = "8f742231b10e8888abcd99yyyzzz85a5";
        let signature = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
        assert!(signature_valid(
            secret,
            "1531420618",
            body.as_bytes(),
            signature
        ));
        assert!(!signature_valid(
            secret,
            "1531420619",
            body.as_bytes(),
            signature
        ));
        assert!(!signature_valid(
            "another",
            "1531420618",
            body.as_bytes(),
            signature
        ));
        assert!(!signature_valid(
            secret,
            "1531420618",
            body.as_bytes(),
            "a2114d57"
        ));
    }

    #[test]
    fn a_button_value_is_the_token_and_the_option() {
        assert_eq!(parse_value("AbC-_x.2"), Some(("AbC-_x", 2)));
        assert_eq!(parse_value("AbC"), None);
        assert_eq!(parse_value("AbC.x"), None);
    }
}
