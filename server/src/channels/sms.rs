//! SMS through Twilio's Messages API: a form POST with basic auth; the message, the
//! options to reply with, the time left, then the link. Twilio's posts to us (replies)
//! are checked with [`signature_valid`].

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha1::Sha1;

use super::pace::Rate;
use super::Notice;
use crate::config::TwilioConfig;
use crate::domain::replies;
use crate::outbound;
use crate::views;
use crate::work::outcome::{provider_verdict, SendOutcome, Verdict};

/// Where Twilio posts its reports on the messages it accepted.
pub const STATUS_PATH: &str = "/v1/inbound/twilio/status";
/// Twilio refuses longer bodies.
pub const MAX_BODY_CHARS: usize = 1600;
/// The most of Twilio's answer read: its JSON is well under this.
const ANSWER_BYTES: usize = 16 * 1024;

/// A configured Twilio account.
pub struct Twilio {
    config: TwilioConfig,
    http: reqwest::Client,
}

/// Twilio's error body.
#[derive(Deserialize)]
struct TwilioError {
    code: Option<i64>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct TwilioMessage {
    sid: Option<String>,
}

impl Twilio {
    /// The Twilio account of `config`; fails rather than send without the client's limits.
    pub fn new(config: TwilioConfig, policy: &outbound::Policy) -> Result<Twilio, String> {
        let http = outbound::provider_client(policy)?;
        Ok(Twilio { config, http })
    }

    /// The sending number or Messaging Service.
    pub fn from(&self) -> &str {
        &self.config.from
    }

    /// The sender's throughput: Twilio sends its segments at the sender's MPS and queues
    /// the rest; up to ten seconds of them are let into Twilio's queue, the rest wait here,
    /// where a pause decided or expired meanwhile is not sent at all.
    pub fn rate(&self) -> Rate {
        Rate {
            per_second: self.config.segments_per_second,
            burst: self.config.segments_per_second * 10.0,
        }
    }

    pub async fn send(&self, notice: &Notice<'_>) -> SendOutcome {
        let url = format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            self.config.api_url.trim_end_matches('/'),
            self.config.account_sid
        );
        let body = body(notice);
        // A Messaging Service SID (MG…) sends from the service's own pool of numbers.
        let sender = if self.config.from.starts_with("MG") {
            "MessagingServiceSid"
        } else {
            "From"
        };
        // Twilio reports there whether the message reached the phone.
        let callback = format!("{}{STATUS_PATH}", notice.public_url);
        let form = [
            ("To", notice.pause.recipient.as_str()),
            (sender, self.config.from.as_str()),
            ("Body", body.as_str()),
            ("StatusCallback", callback.as_str()),
        ];
        let response = self
            .http
            .post(&url)
            .basic_auth(
                &self.config.account_sid,
                Some(self.config.auth_token.expose()),
            )
            .form(&form)
            .send()
            .await;
        let response = match response {
            Ok(response) => response,
            Err(e) => {
                return SendOutcome::RetryLater {
                    error: format!("Twilio: {}", outbound::describe(&e)),
                    after: None,
                }
            }
        };
        let status = response.status();
        let after = outbound::retry_after(&response, notice.now);
        let (text, _) = outbound::read_capped(response, ANSWER_BYTES).await;
        if status.is_success() {
            let sid = serde_json::from_str::<TwilioMessage>(&text)
                .ok()
                .and_then(|m| m.sid);
            return SendOutcome::Delivered {
                via: "twilio",
                reference: sid,
            };
        }
        let detail = match serde_json::from_str::<TwilioError>(&text) {
            Ok(TwilioError {
                code,
                message: Some(message),
            }) => match code {
                Some(code) => format!("{message} (Twilio error {code})"),
                None => message,
            },
            _ => text.chars().take(200).collect(),
        };
        let error = format!("Twilio answered {status}: {detail}");
        match provider_verdict(status.as_u16()) {
            Verdict::Transient => SendOutcome::RetryLater { error, after },
            Verdict::Accepted | Verdict::Permanent => SendOutcome::Refused { error },
        }
    }
}

/// The SMS: the message, the options to reply with and the time left, then the link.
/// When too long, the message is cut, never the rest.
pub fn body(notice: &Notice<'_>) -> String {
    let pause = notice.pause;
    let left = pause.expires_at.duration_since(notice.now);
    let tail = format!(
        "\n\n{} (within {})\n{}",
        replies::reply_options(&pause.options, notice.reference.as_deref()),
        views::human_duration(left),
        notice.link
    );
    let room = MAX_BODY_CHARS.saturating_sub(tail.chars().count());
    let message = if pause.message.chars().count() > room {
        let mut cut: String = pause.message.chars().take(room.saturating_sub(1)).collect();
        cut.push('…');
        cut
    } else {
        pause.message.clone()
    };
    format!("{message}{tail}")
}

/// Whether `signature` (the `X-Twilio-Signature` header) is Twilio's for a post of
/// `params` to `url`: base64 of HMAC-SHA1, keyed by the account's auth token, over the
/// full URL then each parameter's name and value, sorted by name. Checked in constant time.
pub fn signature_valid(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    signature: &str,
) -> bool {
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return false;
    };
    signed(auth_token, url, params).verify_slice(&given).is_ok()
}

fn signed(auth_token: &str, url: &str, params: &[(String, String)]) -> Hmac<Sha1> {
    // HMAC takes keys of any length.
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(auth_token.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(url.as_bytes());
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Twilio's own example of its signature (docs, "Validating requests"): this URL,
    /// these parameters and the auth token 12345 sign as 0/KCTR6DLpKmkAf8muzZqo1nDgQ=.
    #[test]
    fn the_documented_example_signature_verifies() {
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert!(signature_valid(
            "12345",
            url,
            &params,
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
        let mut reordered = params.clone();
        reordered.reverse();
        assert!(signature_valid(
            "12345",
            url,
            &reordered,
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
        assert!(!signature_valid(
            "12346",
            url,
            &params,
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
        assert!(!signature_valid(
            "12345",
            "https://mycompany.com/myapp.php?foo=1&bar=3",
            &params,
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
        assert!(!signature_valid("12345", url, &params, "not base64!"));
        assert!(!signature_valid("12345", url, &params, ""));
    }
}
