//! What a send came to, and what to do next: the typed outcome every channel and the
//! webhook sender return, the rule that tells a failure worth retrying from a refusal, and
//! the retry schedule. Pure functions, so that the rules are tested without a network.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

/// How one attempt to send something went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// Accepted by the provider or the receiver.
    Delivered {
        via: &'static str,
        reference: Option<String>,
    },
    /// Printed on the console: no provider is configured for the channel.
    Logged,
    /// Down, slow or busy: worth trying again, no sooner than `after` if the other side
    /// asked for that (`Retry-After`).
    RetryLater {
        error: String,
        after: Option<Duration>,
    },
    /// Refused: trying again would not help.
    Refused { error: String },
}

impl SendOutcome {
    /// The error it carries, if it failed.
    pub fn error(&self) -> Option<&str> {
        match self {
            SendOutcome::RetryLater { error, .. } | SendOutcome::Refused { error } => Some(error),
            SendOutcome::Delivered { .. } | SendOutcome::Logged => None,
        }
    }
}

/// What an HTTP status means for a send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    Transient,
    Permanent,
}

/// A provider's answer (Twilio, Slack): 2xx accepted; a timeout, "too early", rate limit
/// or server error is worth retrying; anything else is a refusal that retrying would repeat.
pub fn provider_verdict(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Accepted,
        408 | 425 | 429 | 500..=599 => Verdict::Transient,
        _ => Verdict::Permanent,
    }
}

/// A webhook receiver's answer, as Standard Webhooks says: 2xx delivered, `410 Gone`
/// stops at once, anything else (a redirect included, as none is followed) is retried.
pub fn webhook_verdict(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Accepted,
        410 => Verdict::Permanent,
        _ => Verdict::Transient,
    }
}

/// When to try again after `attempts` attempts have failed (the first attempt is
/// immediate; `schedule[i]` is the wait before attempt `i + 2`). `jitter` scales the wait
/// (1.0 for none); the other side's `Retry-After` is honoured when later. None when the
/// schedule is spent, or the retry would come at or after `deadline`.
pub fn retry_at(
    schedule: &[Duration],
    attempts: u32,
    now: Timestamp,
    jitter: f64,
    retry_after: Option<Duration>,
    deadline: Option<Timestamp>,
) -> Option<Timestamp> {
    let index = usize::try_from(attempts.checked_sub(1)?).ok()?;
    let wait = schedule
        .get(index)?
        .mul_f64(jitter.max(0.0))
        .max(retry_after.unwrap_or_default());
    let at = now.checked_add(SignedDuration::try_from(wait).ok()?).ok()?;
    match deadline {
        Some(deadline) if at >= deadline => None,
        _ => Some(at),
    }
}

/// A random factor between 0.8 and 1.2, so that retries of many sends do not arrive
/// together.
pub fn jitter() -> f64 {
    0.8 + rand::random::<f64>() * 0.4
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    #[test]
    fn providers_are_retried_only_when_down_slow_or_busy() {
        assert_eq!(provider_verdict(201), Verdict::Accepted);
        for transient in [408, 425, 429, 500, 502, 503, 504] {
            assert_eq!(
                provider_verdict(transient),
                Verdict::Transient,
                "{transient}"
            );
        }
        for permanent in [301, 400, 401, 403, 404, 410, 413, 422] {
            assert_eq!(
                provider_verdict(permanent),
                Verdict::Permanent,
                "{permanent}"
            );
        }
    }

    #[test]
    fn webhooks_are_retried_on_anything_but_2xx_and_410() {
        assert_eq!(webhook_verdict(204), Verdict::Accepted);
        assert_eq!(webhook_verdict(410), Verdict::Permanent);
        for transient in [301, 302, 400, 404, 429, 500, 503] {
            assert_eq!(
                webhook_verdict(transient),
                Verdict::Transient,
                "{transient}"
            );
        }
    }

    #[test]
    fn the_schedule_gives_each_retry_its_wait_then_ends() {
        let schedule = [Duration::from_secs(5), Duration::from_secs(300)];
        assert_eq!(retry_at(&schedule, 1, at(0), 1.0, None, None), Some(at(5)));
        assert_eq!(
            retry_at(&schedule, 2, at(0), 1.0, None, None),
            Some(at(300))
        );
        assert_eq!(retry_at(&schedule, 3, at(0), 1.0, None, None), None);
        assert_eq!(retry_at(&schedule, 0, at(0), 1.0, None, None), None);
    }

    #[test]
    fn jitter_scales_and_retry_after_can_only_delay() {
        let schedule = [Duration::from_secs(100)];
        assert_eq!(retry_at(&schedule, 1, at(0), 0.8, None, None), Some(at(80)));
        assert_eq!(
            retry_at(&schedule, 1, at(0), 1.2, None, None),
            Some(at(120))
        );
        let later = Some(Duration::from_secs(600));
        assert_eq!(
            retry_at(&schedule, 1, at(0), 1.0, later, None),
            Some(at(600))
        );
        let sooner = Some(Duration::from_secs(1));
        assert_eq!(
            retry_at(&schedule, 1, at(0), 1.0, sooner, None),
            Some(at(100))
        );
        for _ in 0..100 {
            assert!((0.8..=1.2).contains(&jitter()));
        }
    }

    #[test]
    fn no_retry_at_or_after_the_deadline() {
        let schedule = [Duration::from_secs(30)];
        assert_eq!(
            retry_at(&schedule, 1, at(0), 1.0, None, Some(at(31))),
            Some(at(30))
        );
        assert_eq!(retry_at(&schedule, 1, at(0), 1.0, None, Some(at(30))), None);
    }
}
