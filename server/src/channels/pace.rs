//! Pacing sends to a provider's documented rate, with the outbox as the queue.
//!
//! Slack accepts about one message per second per incoming webhook, with short bursts;
//! Twilio sends a number's message segments at its MPS and queues the rest at Twilio,
//! where a long queue delivers the SMS after its pause has expired. So a send is given a
//! start time by a GCRA (the "generic cell rate algorithm": a token bucket kept as one
//! time per lane). A send whose start is near waits for it; one whose start is further
//! goes back to the outbox, due then, holding its reservation, so that neither errors nor
//! a flood of re-claims come of a burst. Each server paces its own sends.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::store::deliveries::DeliveryKey;

/// A provider's rate: `per_second` units (messages, segments) on average, with up to
/// `burst` units at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

impl Rate {
    /// The time `units` take at this rate.
    fn interval(self, units: u32) -> SignedDuration {
        SignedDuration::from_secs_f64(f64::from(units) / self.per_second.max(1e-3))
    }

    /// How far ahead of the rate a lane may run.
    fn tolerance(self) -> SignedDuration {
        SignedDuration::from_secs_f64((self.burst - 1.0).max(0.0) / self.per_second.max(1e-3))
    }
}

/// Lanes and reservations are forgotten this long after they are past.
const FORGET_AFTER: SignedDuration = SignedDuration::from_secs(600);
/// Past this many lanes or reservations, the forgotten ones are swept.
const SWEEP_ABOVE: usize = 4096;

/// The start times of sends, per lane (a webhook URL, a sending number).
#[derive(Default)]
pub struct Pacer {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Per lane, the theoretical time its next unit would go at the average rate.
    lanes: HashMap<String, Timestamp>,
    /// Sends sent back to the outbox, and the start each holds.
    held: HashMap<DeliveryKey, Timestamp>,
}

impl Pacer {
    /// When the send of `delivery` may start on `lane`, costing `units`: `now` or later. The
    /// time is reserved; a send that holds a reservation (see [`Pacer::hold`]) gets it back.
    pub fn start(
        &self,
        lane: &str,
        rate: Rate,
        units: u32,
        delivery: DeliveryKey,
        now: Timestamp,
    ) -> Timestamp {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(held) = state.held.remove(&delivery) {
            return held.max(now);
        }
        state.sweep(now);
        let tat = state
            .lanes
            .get(lane)
            .copied()
            .map_or(now, |tat| tat.max(now));
        let start = tat
            .checked_sub(rate.tolerance())
            .map_or(now, |earliest| earliest.max(now));
        state.lanes.insert(
            lane.to_owned(),
            tat.saturating_add(rate.interval(units)).unwrap_or(tat),
        );
        start
    }

    /// Keeps the start of `delivery`, which goes back to the outbox until then.
    pub fn hold(&self, delivery: DeliveryKey, start: Timestamp) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.held.insert(delivery, start);
    }

    /// Starts nothing on `lane` before `until`: the provider said so (`429`, `Retry-After`).
    pub fn hold_off(&self, lane: &str, rate: Rate, until: Timestamp) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let tat = until.saturating_add(rate.tolerance()).unwrap_or(until);
        let entry = state.lanes.entry(lane.to_owned()).or_insert(tat);
        *entry = (*entry).max(tat);
    }
}

impl State {
    fn sweep(&mut self, now: Timestamp) {
        let Some(horizon) = now.checked_sub(FORGET_AFTER).ok() else {
            return;
        };
        if self.lanes.len() > SWEEP_ABOVE {
            // A lane whose time is past behaves as a new one.
            self.lanes.retain(|_, tat| *tat > now);
        }
        if self.held.len() > SWEEP_ABOVE {
            // A reservation long past belongs to a pause decided or expired meanwhile.
            self.held.retain(|_, start| *start > horizon);
        }
    }
}

/// How long a send may wait for its start in flight; a later start goes back to the
/// outbox.
pub const WAIT_IN_FLIGHT: Duration = Duration::from_secs(1);

/// The number of SMS segments `body` is sent as: GSM-7 when every character is in its
/// alphabet (160 septets in one segment, 153 per part when split; the extension table's
/// characters take two), UCS-2 otherwise (70 code units, 67 per part).
pub fn sms_segments(body: &str) -> u32 {
    let septets: Option<usize> = body.chars().map(gsm7_septets).sum();
    let (length, single, part) = match septets {
        Some(septets) => (septets, 160, 153),
        None => (body.encode_utf16().count(), 70, 67),
    };
    let segments = if length <= single {
        1
    } else {
        length.div_ceil(part)
    };
    u32::try_from(segments).unwrap_or(u32::MAX)
}

/// GSM 03.38's basic alphabet (one septet each) and its extension table (two).
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const GSM7_EXTENSION: &str = "\u{c}^{}\\[~]|€";

fn gsm7_septets(c: char) -> Option<usize> {
    if GSM7_BASIC.contains(c) {
        Some(1)
    } else if GSM7_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(millis: i64) -> Timestamp {
        Timestamp::from_millisecond(1_800_000_000_000 + millis).unwrap()
    }

    fn pause() -> DeliveryKey {
        DeliveryKey {
            pause_id: crate::ids::PauseId::new(),
            approver: 0,
            reminder: 0,
        }
    }

    const SLACK: Rate = Rate {
        per_second: 1.0,
        burst: 3.0,
    };

    #[test]
    fn a_burst_goes_at_once_then_one_a_second() {
        let pacer = Pacer::default();
        let starts: Vec<Timestamp> = (0..6)
            .map(|_| pacer.start("hook", SLACK, 1, pause(), at(0)))
            .collect();
        assert_eq!(
            starts,
            vec![at(0), at(0), at(0), at(1000), at(2000), at(3000)]
        );
        // Another lane is not held up by this one.
        assert_eq!(pacer.start("other", SLACK, 1, pause(), at(0)), at(0));
        // Once the lane has rested, a burst goes at once again.
        assert_eq!(
            pacer.start("hook", SLACK, 1, pause(), at(20_000)),
            at(20_000)
        );
    }

    #[test]
    fn a_held_start_is_given_back_once() {
        let pacer = Pacer::default();
        let held = pause();
        for _ in 0..3 {
            pacer.start("hook", SLACK, 1, pause(), at(0));
        }
        let start = pacer.start("hook", SLACK, 1, held, at(0));
        assert_eq!(start, at(1000));
        pacer.hold(held, start);
        // Back from the outbox a little early: it keeps its start, and reserves no other.
        assert_eq!(pacer.start("hook", SLACK, 1, held, at(990)), at(1000));
        assert_eq!(pacer.start("hook", SLACK, 1, pause(), at(990)), at(2000));
        // A second claim of the same pause (a retry) is paced like any send.
        assert_eq!(pacer.start("hook", SLACK, 1, held, at(990)), at(3000));
    }

    #[test]
    fn units_cost_their_time_and_a_provider_can_hold_a_lane_off() {
        let pacer = Pacer::default();
        let twilio = Rate {
            per_second: 2.0,
            burst: 1.0,
        };
        assert_eq!(pacer.start("+1555", twilio, 4, pause(), at(0)), at(0));
        assert_eq!(pacer.start("+1555", twilio, 1, pause(), at(0)), at(2000));
        pacer.hold_off("hook", SLACK, at(30_000));
        assert_eq!(pacer.start("hook", SLACK, 1, pause(), at(0)), at(30_000));
        assert_eq!(pacer.start("hook", SLACK, 1, pause(), at(0)), at(31_000));
    }

    #[test]
    fn sms_are_counted_in_segments_as_carriers_count_them() {
        assert_eq!(sms_segments(&"a".repeat(160)), 1);
        assert_eq!(sms_segments(&"a".repeat(161)), 2);
        assert_eq!(sms_segments(&"a".repeat(306)), 2);
        assert_eq!(sms_segments(&"a".repeat(307)), 3);
        // The extension table's characters take two septets.
        assert_eq!(sms_segments(&"€".repeat(80)), 1);
        assert_eq!(sms_segments(&"€".repeat(81)), 2);
        // One character outside GSM-7 makes the whole message UCS-2.
        assert_eq!(sms_segments(&format!("{}✓", "a".repeat(69))), 1);
        assert_eq!(sms_segments(&format!("{}✓", "a".repeat(70))), 2);
        // An emoji is two UTF-16 units.
        assert_eq!(sms_segments(&"🚀".repeat(35)), 1);
        assert_eq!(sms_segments(&"🚀".repeat(36)), 2);
    }
}
