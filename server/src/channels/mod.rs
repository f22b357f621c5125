//! The channels that reach a human, each behind one `send`: a notice in, a
//! [`SendOutcome`] out. The delivery worker ([`crate::work::deliveries`]) decides when to send and what
//! to record.
//!
//! - [`sms`]: Twilio. - [`email`]: SMTP. - [`slack`]: incoming webhooks.
//!
//! A channel with no provider configured prints the link on the server's console instead
//! (delivery `logged`), so a fresh server works end to end with no accounts.

pub mod email;
pub mod slack;
pub mod sms;

use jiff::Timestamp;
use pausepoint_api::{Channel, Pause};

use crate::config::Config;
use crate::outbound;
use crate::work::outcome::SendOutcome;

/// What a channel is given to send.
pub struct Notice<'a> {
    pub pause: &'a Pause,
    pub project: &'a str,
    /// The response link; it appears nowhere but in the message to the human.
    pub link: String,
    pub now: Timestamp,
}

/// The providers, as configured.
pub struct Channels {
    twilio: Option<sms::Twilio>,
    smtp: Option<email::Smtp>,
    slack: slack::Slack,
}

impl Channels {
    /// The providers of `config`; an error names the setting that cannot be used.
    pub fn from_config(config: &Config) -> Result<Channels, String> {
        let policy = config.outbound_policy();
        Ok(Channels {
            twilio: config
                .twilio
                .clone()
                .map(|twilio| sms::Twilio::new(twilio, &policy))
                .transpose()?,
            smtp: config
                .smtp
                .as_ref()
                .map(|smtp| email::Smtp::new(smtp, config.allow_private_network))
                .transpose()?,
            slack: slack::Slack::new(&policy, outbound::system_lookup())?,
        })
    }

    /// Whether `channel` reaches people (rather than the console).
    pub fn configured(&self, channel: Channel) -> bool {
        match channel {
            Channel::Sms => self.twilio.is_some(),
            Channel::Email => self.smtp.is_some(),
            Channel::Slack => true,
        }
    }

    pub async fn send(&self, notice: &Notice<'_>) -> SendOutcome {
        match notice.pause.channel {
            Channel::Sms => match &self.twilio {
                Some(twilio) => twilio.send(notice).await,
                None => console(notice),
            },
            Channel::Email => match &self.smtp {
                Some(smtp) => smtp.send(notice).await,
                None => console(notice),
            },
            Channel::Slack => self.slack.send(notice).await,
        }
    }
}

/// The "logged" channel: the link goes to the console (stdout), never into the log.
fn console(notice: &Notice<'_>) -> SendOutcome {
    let pause = notice.pause;
    println!(
        "Delivery ({} to {}, no provider configured): {:?}\n  Answer at {}",
        pause.channel,
        pausepoint_api::shown_recipient(pause.channel, &pause.recipient),
        pause.message,
        notice.link
    );
    SendOutcome::Logged
}
