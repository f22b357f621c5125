//! ntfy: a push notification published to the recipient's topic URL (ntfy.sh or a server
//! of one's own) with ntfy's JSON publish API. One tap on the lock screen decides: each
//! option is an `http` action that POSTs the choice through the pause's link, as the
//! page's own buttons do, while they fit in ntfy's three actions; a `view` action opens
//! the page when there is room or when the options do not fit, and tapping the
//! notification opens it too.

use serde_json::{json, Value};

use super::Notice;
use crate::config::Secret;
use crate::domain::projects;
use crate::work::outcome::{provider_verdict, SendOutcome, Verdict};
use crate::{outbound, views};

/// ntfy shows at most three action buttons.
pub const MAX_ACTIONS: usize = 3;
/// The most of ntfy's answer read: its JSON is well under this.
const ANSWER_BYTES: usize = 4 * 1024;

/// Publishes to topic URLs, which API callers choose: through the guarded client.
pub struct Ntfy {
    http: reqwest::Client,
    policy: outbound::Policy,
    lookup: outbound::Lookup,
    /// An access token (`tk_…`) for servers that require one.
    token: Option<Secret>,
}

impl Ntfy {
    pub fn new(
        policy: &outbound::Policy,
        lookup: outbound::Lookup,
        token: Option<Secret>,
    ) -> Result<Ntfy, String> {
        Ok(Ntfy {
            http: outbound::client(policy, lookup.clone())?,
            policy: policy.clone(),
            lookup,
            token,
        })
    }

    pub async fn send(&self, notice: &Notice<'_>) -> SendOutcome {
        let Some((server, topic)) = split_topic(&notice.pause.recipient) else {
            return SendOutcome::Refused {
                error: "ntfy: the recipient is not a topic URL".into(),
            };
        };
        if let Err(error) = outbound::check_through_proxy(&server, &self.policy, &self.lookup).await
        {
            return SendOutcome::Refused { error };
        }
        let mut request = self.http.post(server).json(&message(notice, &topic));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose());
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                return SendOutcome::RetryLater {
                    error: format!("ntfy: {}", outbound::describe(&e)),
                    after: None,
                }
            }
        };
        let status = response.status();
        let after = outbound::retry_after(&response, notice.now);
        let (text, _) = outbound::read_capped(response, ANSWER_BYTES).await;
        if status.is_success() {
            let id = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["id"].as_str().map(str::to_owned));
            return SendOutcome::Delivered {
                via: "ntfy",
                reference: id,
            };
        }
        let detail = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_else(|| text.chars().take(200).collect());
        let error = format!("ntfy answered {status}: {detail}");
        match provider_verdict(status.as_u16()) {
            Verdict::Transient => SendOutcome::RetryLater { error, after },
            Verdict::Accepted | Verdict::Permanent => SendOutcome::Refused { error },
        }
    }
}

/// `https://ntfy.sh/approvals` -> (`https://ntfy.sh/`, `approvals`): JSON publishing goes
/// to the server's root with the topic in the body.
pub fn split_topic(recipient: &str) -> Option<(url::Url, String)> {
    let url = url::Url::parse(recipient).ok()?;
    let mut segments: Vec<&str> = url.path_segments()?.filter(|s| !s.is_empty()).collect();
    let topic = segments.pop()?.to_owned();
    let mut server = url.clone();
    server.set_path(&format!("{}/", segments.join("/")));
    server.set_query(None);
    server.set_fragment(None);
    Some((server, topic))
}

/// The JSON publish body: who asks, the question, the time left, and the actions.
pub fn message(notice: &Notice<'_>, topic: &str) -> Value {
    let pause = notice.pause;
    let title = match projects::shown_name(notice.project) {
        Some(project) => format!("{project} asks"),
        None => "Decision needed".to_owned(),
    };
    let left = views::human_duration(pause.expires_at.duration_since(notice.now));
    json!({
        "topic": topic,
        "title": title,
        "message": format!("{}\n\n{left} left to answer.", pause.message),
        "priority": 4,
        "tags": ["question"],
        "click": notice.link,
        "actions": actions(&pause.options, &notice.link),
    })
}

/// One `http` action per option while they fit, and a `view` action when there is room
/// or they do not fit.
fn actions(options: &[String], link: &str) -> Vec<Value> {
    let view = json!({ "action": "view", "label": "Open", "url": link, "clear": false });
    if options.len() > MAX_ACTIONS {
        return vec![view];
    }
    let mut actions: Vec<Value> = options
        .iter()
        .map(|option| {
            let body: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("choice", option)
                .finish();
            json!({
                "action": "http",
                "label": option,
                "url": link,
                "method": "POST",
                "headers": { "Content-Type": "application/x-www-form-urlencoded" },
                "body": body,
                "clear": true,
            })
        })
        .collect();
    if actions.len() < MAX_ACTIONS {
        actions.push(view);
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topic_url_splits_into_the_server_and_the_topic() {
        let (server, topic) = split_topic("https://ntfy.sh/approvals-7f3k").unwrap();
        assert_eq!(
            (server.as_str(), topic.as_str()),
            ("https://ntfy.sh/", "approvals-7f3k")
        );
        let (server, topic) = split_topic("https://push.example.com/ntfy/ops?x=1").unwrap();
        assert_eq!(
            (server.as_str(), topic.as_str()),
            ("https://push.example.com/ntfy/", "ops")
        );
        assert!(split_topic("https://ntfy.sh/").is_none());
    }

    #[test]
    fn options_become_actions_while_they_fit() {
        let options = |n: usize| (0..n).map(|i| format!("Option {i}")).collect::<Vec<_>>();
        let kinds = |n| {
            actions(&options(n), "https://p.example/r/t")
                .iter()
                .map(|a| a["action"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(kinds(2), ["http", "http", "view"]);
        assert_eq!(kinds(3), ["http", "http", "http"]);
        assert_eq!(kinds(4), ["view"]);
        let first = &actions(&["Wire it & go".to_owned(), "No".to_owned()], "u")[0];
        assert_eq!(first["body"], "choice=Wire+it+%26+go");
    }
}
