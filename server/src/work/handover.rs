//! The handover: a new pause's first notices, passed from the create that wrote them to
//! this server's delivery worker, with no claim and no read.
//!
//! A create writes its first notices already leased to this server (as a claim would
//! lease them), and after its commit gives them here with the pause it wrote. The worker
//! takes them as it has room. Every other server's claim skips them while the lease runs;
//! if this server dies first, the lease runs out and any server claims them, as it would
//! a crashed claimer's.
//!
//! The handover is open only while the worker runs and has no backlog, and holds a
//! bounded number of notices: a create that finds it closed or full writes its notices
//! unleased, for a claim. While claimable rows wait (a burst beyond what the worker can
//! send, retries that came due), it is closed too, so that new notices queue behind the
//! waiting ones in the order they came due, rather than overtake them.
//! A notice that waited here until less than half its lease was left is dropped, not sent:
//! its lease runs out and a claim takes it, so no notice is sent by two servers because it
//! waited too long on one.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use jiff::{SignedDuration, Timestamp};
use pausepoint_api::Pause;
use tokio::sync::Notify;

use crate::ids::ProjectId;
use crate::store::deliveries::DeliveryKey;

/// The most notices the handover holds; beyond it, creates leave theirs for a claim.
const CAPACITY: usize = 4096;

/// A first notice written leased to this server, with the pause it asks.
#[derive(Debug, Clone)]
pub struct Handed {
    pub key: DeliveryKey,
    pub project_id: ProjectId,
    pub pause: Pause,
    /// When the lease written with the notice runs out.
    pub lease_until: Timestamp,
}

#[derive(Default)]
struct State {
    /// The worker's lease, while it runs.
    lease: Option<SignedDuration>,
    /// Whether the worker takes new notices this way: not while claimable rows wait.
    accepting: bool,
    notices: VecDeque<Handed>,
}

/// Notices waiting for this server's delivery worker. One per server, in its hub.
#[derive(Default)]
pub struct Handover {
    state: Mutex<State>,
    bell: Notify,
}

impl Handover {
    /// Opens the handover: the worker runs, and leases its notices for `lease`. Creates
    /// hand notices over once the worker says it accepts them.
    pub fn open(&self, lease: SignedDuration) {
        self.state().lease = Some(lease);
    }

    /// Whether creates hand their notices over (the worker has no backlog to claim), or
    /// leave them for a claim.
    pub fn accept(&self, accepting: bool) {
        self.state().accepting = accepting;
    }

    /// Closes it, as the worker stops; returns the notices it never took.
    pub fn close(&self) -> Vec<Handed> {
        let mut state = self.state();
        state.lease = None;
        state.accepting = false;
        state.notices.drain(..).collect()
    }

    /// The lease a create at `now` writes its first notices with, or none when they are
    /// for a claim (the worker is not running, has a backlog, or has enough waiting).
    pub fn lease_until(&self, now: Timestamp) -> Option<Timestamp> {
        let state = self.state();
        let lease = state.lease?;
        if !state.accepting || state.notices.len() >= CAPACITY {
            return None;
        }
        now.checked_add(lease).ok()
    }

    /// Gives the worker notices a create committed, leased as [`Handover::lease_until`]
    /// said. Dropped if the worker stopped meanwhile: their leases run out, and a claim
    /// takes them.
    pub fn give(&self, notices: Vec<Handed>) {
        if notices.is_empty() {
            return;
        }
        let mut state = self.state();
        if state.lease.is_none() {
            return;
        }
        state.notices.extend(notices);
        drop(state);
        self.bell.notify_one();
    }

    /// Takes up to `room` notices to send at `now`, oldest first. Those with less than
    /// half their lease left are dropped (see the module's comment).
    pub fn take(&self, room: usize, now: Timestamp) -> Vec<Handed> {
        let mut state = self.state();
        let Some(lease) = state.lease else {
            return Vec::new();
        };
        let mut taken = Vec::new();
        while taken.len() < room {
            let Some(notice) = state.notices.pop_front() else {
                break;
            };
            if notice.lease_until.duration_since(now) >= lease / 2 {
                taken.push(notice);
            } else {
                tracing::warn!(
                    delivery = %notice.key,
                    "a handed-over notice waited too long; it goes out when its lease runs out"
                );
            }
        }
        taken
    }

    /// How many notices wait here, and when the oldest of them was written: they wait to
    /// be sent as much as a due row does, but leased, where the table's count of due
    /// rows does not see them.
    pub fn waiting(&self) -> (usize, Option<Timestamp>) {
        let state = self.state();
        let since = match (state.lease, state.notices.front()) {
            (Some(lease), Some(oldest)) => oldest.lease_until.checked_sub(lease).ok(),
            _ => None,
        };
        (state.notices.len(), since)
    }

    /// Rung when notices are given.
    pub fn bell(&self) -> &Notify {
        &self.bell
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::ids::PauseId;

    fn notice(at: Timestamp, lease_until: Timestamp) -> Handed {
        let pause: Pause = serde_json::from_value(serde_json::json!({
            "pause_id": PauseId::at(at).to_string(),
            "status": "pending", "channel": "sms", "recipient": "+15550100",
            "message": "Deploy?", "options": ["Yes", "No"], "allow_text_response": false,
            "created_at": "2030-01-01T00:00:00Z", "expires_at": "2030-01-02T00:00:00Z",
        }))
        .unwrap();
        Handed {
            key: DeliveryKey {
                pause_id: pause.pause_id.into(),
                approver: 0,
                reminder: 0,
            },
            project_id: ProjectId::from(uuid::Uuid::now_v7()),
            pause,
            lease_until,
        }
    }

    #[test]
    fn a_closed_or_unaccepting_handover_leases_nothing_and_a_closed_one_keeps_nothing() {
        let handover = Handover::default();
        let now = Timestamp::from_second(1_900_000_000).unwrap();
        assert_eq!(handover.lease_until(now), None);
        handover.give(vec![notice(now, now + SignedDuration::from_secs(60))]);
        handover.open(SignedDuration::from_secs(60));
        assert!(handover.take(10, now).is_empty());
        // Open, it leases nothing either until the worker accepts notices.
        assert_eq!(handover.lease_until(now), None);
        handover.accept(true);
        assert!(handover.lease_until(now).is_some());
        handover.accept(false);
        assert_eq!(handover.lease_until(now), None);
    }

    #[test]
    fn notices_are_taken_oldest_first_up_to_the_room_and_given_back_on_close() {
        let handover = Handover::default();
        let now = Timestamp::from_second(1_900_000_000).unwrap();
        handover.open(SignedDuration::from_secs(60));
        handover.accept(true);
        let until = handover.lease_until(now).unwrap();
        assert_eq!(until, now + SignedDuration::from_secs(60));
        let notices: Vec<Handed> = (0..3).map(|_| notice(now, until)).collect();
        let keys: Vec<DeliveryKey> = notices.iter().map(|n| n.key).collect();
        handover.give(notices);
        assert_eq!(handover.waiting(), (3, Some(now)), "written at `now`");
        let taken = handover.take(2, now);
        assert_eq!(taken.iter().map(|n| n.key).collect::<Vec<_>>(), keys[..2]);
        assert_eq!(handover.waiting(), (1, Some(now)));
        let left = handover.close();
        assert_eq!(handover.waiting(), (0, None));
        assert_eq!(left.iter().map(|n| n.key).collect::<Vec<_>>(), keys[2..]);
        assert_eq!(handover.lease_until(now), None);
    }

    #[test]
    fn a_notice_with_less_than_half_its_lease_left_is_left_for_a_claim() {
        let handover = Handover::default();
        let now = Timestamp::from_second(1_900_000_000).unwrap();
        handover.open(SignedDuration::from_secs(60));
        handover.accept(true);
        let until = handover.lease_until(now).unwrap();
        handover.give(vec![notice(now, until), notice(now, until)]);
        assert_eq!(
            handover.take(1, now + SignedDuration::from_secs(29)).len(),
            1
        );
        assert!(handover
            .take(1, now + SignedDuration::from_secs(31))
            .is_empty());
    }

    #[test]
    fn a_full_handover_leaves_new_notices_for_a_claim() {
        let handover = Handover::default();
        let now = Timestamp::from_second(1_900_000_000).unwrap();
        handover.open(SignedDuration::from_secs(60));
        handover.accept(true);
        let until = handover.lease_until(now).unwrap();
        handover.give((0..CAPACITY).map(|_| notice(now, until)).collect());
        assert_eq!(handover.lease_until(now), None);
        handover.take(1, now);
        assert!(handover.lease_until(now).is_some());
    }
}
