//! The channels that reach a human, each behind one `send`: a notice in, a
//! [`SendOutcome`] out. The delivery worker ([`crate::work::deliveries`]) decides when to send and what
//! to record.
//!
//! - [`sms`]: Twilio. - [`email`]: SMTP. - [`slack`]: incoming webhooks. - [`ntfy`]: push.
//!
//! A channel with no provider configured prints the link on the server's console instead
//! (delivery `logged`), so a fresh server works end to end with no accounts.

pub mod email;
pub mod ntfy;
pub mod pace;
pub mod slack;
pub mod sms;

use jiff::{SignedDuration, Timestamp};
use pausepoint_api::{Channel, Pause};

use crate::config::Config;
use crate::outbound;
use crate::store::deliveries::DeliveryKey;
use crate::work::outcome::SendOutcome;
use pace::{Pacer, Rate};

/// What a channel is given to send.
pub struct Notice<'a> {
    /// The pause as this approver is asked it: their recipient and channel, and the
    /// message with why it comes when it is an escalation or a reminder.
    pub pause: &'a Pause,
    /// Which delivery this is.
    pub key: DeliveryKey,
    pub project: &'a str,
    /// The response link; it appears nowhere but in the message to the human.
    pub link: String,
    /// The server's public URL, where providers post their reports.
    pub public_url: &'a str,
    /// For an SMS to a number with several questions open: the reference its reply starts
    /// with (see [`crate::domain::replies`]).
    pub reference: Option<String>,
    pub now: Timestamp,
}

/// The providers, as configured.
pub struct Channels {
    twilio: Option<sms::Twilio>,
    smtp: Option<email::Smtp>,
    slack: slack::Slack,
    ntfy: ntfy::Ntfy,
    pacer: Pacer,
}

/// Where a send is paced: its lane, the lane's rate, and what the send costs.
struct Lane {
    name: String,
    rate: Rate,
    units: u32,
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
            slack: slack::Slack::new(
                &policy,
                outbound::system_lookup(),
                config
                    .slack_app
                    .clone()
                    .map(|app| slack::SlackApp::new(app, &policy))
                    .transpose()?,
            )?,
            ntfy: ntfy::Ntfy::new(
                &policy,
                outbound::system_lookup(),
                config.ntfy_token.clone(),
            )?,
            pacer: Pacer::default(),
        })
    }

    /// The Slack app, when one is configured.
    pub fn slack_app(&self) -> Option<&slack::SlackApp> {
        self.slack.app()
    }

    /// Whether `channel` reaches people (rather than the console).
    pub fn configured(&self, channel: Channel) -> bool {
        match channel {
            Channel::Sms => self.twilio.is_some(),
            Channel::Email => self.smtp.is_some(),
            Channel::Slack | Channel::Ntfy => true,
        }
    }

    /// When `notice` may be sent: at `notice.now`, or later when its provider's rate says
    /// so. The start is reserved for it.
    pub fn start(&self, notice: &Notice<'_>) -> Timestamp {
        match self.lane(notice) {
            Some(lane) => self
                .pacer
                .start(&lane.name, lane.rate, lane.units, notice.key, notice.now),
            None => notice.now,
        }
    }

    /// Keeps the start of a send that goes back to the outbox until then.
    pub fn hold(&self, delivery: DeliveryKey, start: Timestamp) {
        self.pacer.hold(delivery, start);
    }

    /// The lane `notice` is paced on, if its provider documents a rate.
    fn lane(&self, notice: &Notice<'_>) -> Option<Lane> {
        match notice.pause.channel {
            Channel::Sms => self.twilio.as_ref().map(|twilio| Lane {
                name: format!("twilio {}", twilio.from()),
                rate: twilio.rate(),
                units: pace::sms_segments(&sms::body(notice)),
            }),
            Channel::Slack => Some(Lane {
                name: format!("slack {}", notice.pause.recipient),
                rate: slack::RATE,
                units: 1,
            }),
            Channel::Email | Channel::Ntfy => None,
        }
    }

    pub async fn send(&self, notice: &Notice<'_>) -> SendOutcome {
        let outcome = self.send_now(notice).await;
        if let (
            SendOutcome::RetryLater {
                after: Some(after), ..
            },
            Some(lane),
        ) = (&outcome, self.lane(notice))
        {
            // The provider asked for a pause: nothing more goes on the lane before it ends.
            let after = SignedDuration::try_from(*after).unwrap_or(SignedDuration::ZERO);
            let until = notice.now.saturating_add(after).unwrap_or(notice.now);
            self.pacer.hold_off(&lane.name, lane.rate, until);
        }
        outcome
    }

    async fn send_now(&self, notice: &Notice<'_>) -> SendOutcome {
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
            Channel::Ntfy => self.ntfy.send(notice).await,
        }
    }
}

/// The "logged" channel: the link goes to the console (stdout), never into the log.
fn console(notice: &Notice<'_>) -> SendOutcome {
    let pause = notice.pause;
    // Formatted first and printed in one piece: one write to stdout, not one per line.
    let text = format!(
        "Delivery ({} to {}, no provider configured): {:?}\n  Answer at {}\n",
        pause.channel,
        pausepoint_api::shown_recipient(pause.channel, &pause.recipient),
        pause.message,
        notice.link
    );
    print!("{text}");
    SendOutcome::Logged
}
