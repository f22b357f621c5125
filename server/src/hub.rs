//! The hub: where committed changes go to wake whoever waits on them. A write announces
//! typed [`Change`]s; after its commit the store hands them here (and, on PostgreSQL,
//! to every other server through `NOTIFY`, whose listener hands them here too). The hub
//! wakes the long-polls on a decided pause, rings the bell of each worker with new work,
//! and keeps the cache of pauses exact. It is the one place that knows who cares about
//! what.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use pausepoint_api::{Channel, Pause, PauseStatus};

use crate::ids::{PauseId, ProjectId};
use crate::metrics::{ChannelLabel, DecisionLabels, Metrics, OutcomeLabel};
use crate::work::handover::Handover;
use crate::work::unrecorded::Unrecorded;

/// Something a committed write changed that others may be waiting for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// A pause was created: its delivery is due now, and its deadline may be the nearest.
    PauseCreated {
        pause_id: PauseId,
        channel: Channel,
        expires_at: Timestamp,
        /// Its notices due now went to the creating server's delivery worker through the
        /// [`Handover`]: no worker needs to look for them.
        #[serde(default)]
        handed_over: bool,
    },
    /// A pause left `pending`, after `waited_ms` milliseconds.
    PauseDecided {
        pause_id: PauseId,
        channel: Channel,
        outcome: PauseStatus,
        waited_ms: i64,
    },
    /// Something else a poll shows of the pause changed (its delivery).
    PauseChanged { pause_id: PauseId },
    /// Deliveries became due now (a retry, an escalation, a reminder).
    DeliveriesDue,
    /// Webhook events became due now (a decision, a resend).
    WebhooksDue,
    /// An API key was created or revoked.
    KeysChanged,
}

impl Change {
    /// Whether a list of pauses may show something new.
    pub fn changes_a_pause(&self) -> bool {
        matches!(
            self,
            Change::PauseCreated { .. } | Change::PauseDecided { .. } | Change::PauseChanged { .. }
        )
    }

    /// Whether other servers sharing the database need to hear of it: what changes a
    /// pause (long-polls and caches everywhere), a new deadline, a key change. Work that is
    /// due is for the server that made it (the others look on their own, and take over
    /// leased work when a server dies).
    pub fn concerns_other_servers(&self) -> bool {
        !matches!(self, Change::DeliveriesDue | Change::WebhooksDue)
    }
}

/// The workers the hub can ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bell {
    Timeouts,
    Deliveries,
    Webhooks,
}

/// Wake-ups for long-polls and workers. One per server; cheap to share.
#[derive(Default)]
pub struct Hub {
    waiting: Mutex<HashMap<PauseId, Arc<Notify>>>,
    timeouts: Notify,
    deliveries: Notify,
    webhooks: Notify,
    /// The earliest deadline the timeout worker knows of; a new pause rings it only when
    /// its own deadline is sooner.
    next_deadline: Mutex<Option<Timestamp>>,
    keys_version: std::sync::atomic::AtomicU64,
    /// Moves whenever a pause is created or changes, for the console's live list.
    activity: tokio::sync::watch::Sender<u64>,
    pauses: PauseCache,
    handover: Handover,
    unrecorded: Unrecorded,
    metrics: Metrics,
}

impl Hub {
    pub fn new() -> Arc<Hub> {
        Arc::new(Hub::default())
    }

    /// Acts on changes this server committed: as [`Hub::publish`], and counts them.
    pub fn publish_local(&self, changes: &[Change]) {
        for change in changes {
            match change {
                Change::PauseCreated { channel, .. } => {
                    self.metrics
                        .pauses_created
                        .get_or_create(&ChannelLabel {
                            channel: channel.to_string(),
                        })
                        .inc();
                }
                Change::PauseDecided {
                    channel,
                    outcome,
                    waited_ms,
                    ..
                } => {
                    self.metrics
                        .pauses_decided
                        .get_or_create(&DecisionLabels {
                            channel: channel.to_string(),
                            outcome: outcome.to_string(),
                        })
                        .inc();
                    self.metrics
                        .decision_seconds
                        .get_or_create(&OutcomeLabel {
                            outcome: outcome.to_string(),
                        })
                        .observe(*waited_ms as f64 / 1000.0);
                }
                _ => {}
            }
        }
        self.publish(changes);
    }

    /// Acts on committed changes, this server's or another's.
    pub fn publish(&self, changes: &[Change]) {
        if changes.iter().any(Change::changes_a_pause) {
            self.activity.send_modify(|n| *n = n.wrapping_add(1));
        }
        for change in changes {
            match change {
                Change::PauseCreated {
                    expires_at,
                    handed_over,
                    ..
                } => {
                    self.metrics.pending.inc();
                    if !handed_over {
                        self.deliveries.notify_one();
                    }
                    let sooner = lock(&self.next_deadline).is_none_or(|next| *expires_at < next);
                    if sooner {
                        self.timeouts.notify_one();
                    }
                }
                Change::PauseDecided { pause_id, .. } => {
                    self.metrics.pending.dec();
                    // Forgotten before anyone is woken: a woken poll reads it afresh.
                    self.pauses.forget(*pause_id);
                    if let Some(notify) = lock(&self.waiting).get(pause_id) {
                        notify.notify_waiters();
                    }
                }
                Change::PauseChanged { pause_id } => self.pauses.forget(*pause_id),
                Change::DeliveriesDue => self.deliveries.notify_one(),
                Change::WebhooksDue => self.webhooks.notify_one(),
                Change::KeysChanged => {
                    self.keys_version
                        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
        }
    }

    /// The bell a worker sleeps on.
    pub fn bell(&self, bell: Bell) -> &Notify {
        match bell {
            Bell::Timeouts => &self.timeouts,
            Bell::Deliveries => &self.deliveries,
            Bell::Webhooks => &self.webhooks,
        }
    }

    /// Rings a worker, as when the server starts or a step asks to go again at once.
    pub fn ring(&self, bell: Bell) {
        self.bell(bell).notify_one();
    }

    /// Tells the hub the earliest deadline of any pending pause, as the timeout worker
    /// last read it.
    pub fn set_next_deadline(&self, next: Option<Timestamp>) {
        *lock(&self.next_deadline) = next;
    }

    /// Changes whenever a pause of any project is created or changes: the console's live
    /// list reads its own project's pauses again when it does.
    pub fn activity(&self) -> tokio::sync::watch::Receiver<u64> {
        self.activity.subscribe()
    }

    /// Registers interest in `pause_id` until the returned subscription is dropped.
    /// Waiters on one pause share one `Notify`, so a decision wakes them all with one call.
    pub fn subscribe(self: &Arc<Self>, pause_id: PauseId) -> Subscription {
        let notify = lock(&self.waiting).entry(pause_id).or_default().clone();
        Subscription {
            hub: Arc::clone(self),
            pause_id,
            notify,
        }
    }

    /// How many pauses have a long-poll waiting on them on this server.
    pub fn watched(&self) -> usize {
        lock(&self.waiting).len()
    }

    /// The server's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// New pauses' first notices on their way to this server's delivery worker.
    pub fn handover(&self) -> &Handover {
        &self.handover
    }

    /// Notices this server sent whose record is still to be written.
    pub fn unrecorded(&self) -> &Unrecorded {
        &self.unrecorded
    }

    /// The pauses this server has read lately (see [`PauseCache`]).
    pub fn pauses(&self) -> &PauseCache {
        &self.pauses
    }

    /// A number that changes whenever an API key is created or revoked.
    pub fn keys_version(&self) -> u64 {
        self.keys_version.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Pauses as polls last read them, so that a poll costs no database round trip. Exact:
/// an entry is forgotten when a committed change concerns its pause, and a read that
/// raced such a change is not kept. Where other servers share the database (their news
/// comes a moment after their commit), only pauses that can no longer change are kept:
/// decided, with their delivery settled.
pub struct PauseCache {
    entries: Mutex<HashMap<PauseId, Arc<(ProjectId, Pause)>>>,
    /// Moves on every change to a pause already there.
    generation: std::sync::atomic::AtomicU64,
    capacity: usize,
    shared: std::sync::atomic::AtomicBool,
}

/// Where a read stood when it began, to keep its result only if nothing changed since.
#[derive(Debug, Clone, Copy)]
pub struct ReadMark(u64);

impl Default for PauseCache {
    fn default() -> PauseCache {
        PauseCache {
            entries: Mutex::new(HashMap::new()),
            generation: std::sync::atomic::AtomicU64::new(0),
            capacity: PAUSE_CACHE_CAPACITY,
            shared: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

/// The most pauses kept.
const PAUSE_CACHE_CAPACITY: usize = 50_000;

impl PauseCache {
    /// Says that other servers share the database (keep only what cannot change).
    pub fn set_shared(&self, shared: bool) {
        self.shared
            .store(shared, std::sync::atomic::Ordering::SeqCst);
    }

    /// The project's pause, if kept.
    pub fn get(&self, project_id: ProjectId, id: PauseId) -> Option<Pause> {
        let entries = lock(&self.entries);
        let entry = entries.get(&id)?;
        (entry.0 == project_id).then(|| entry.1.clone())
    }

    /// Take this before reading a pause from the database, and give it to [`Self::offer`].
    pub fn mark(&self) -> ReadMark {
        ReadMark(self.generation.load(std::sync::atomic::Ordering::SeqCst))
    }

    /// Keeps a pause read from the database, unless a change came while it was read.
    pub fn offer(&self, mark: ReadMark, project_id: ProjectId, pause: &Pause) {
        let settled = pause.status.is_final()
            && pause
                .delivery
                .as_ref()
                .is_none_or(|d| d.status != pausepoint_api::DeliveryStatus::Pending);
        if self.shared.load(std::sync::atomic::Ordering::SeqCst) && !settled {
            return;
        }
        let mut entries = lock(&self.entries);
        if self.generation.load(std::sync::atomic::Ordering::SeqCst) != mark.0 {
            return;
        }
        if entries.len() >= self.capacity {
            // Make room by dropping a tenth, whichever they are: a dropped pause is read
            // again, which is all a miss costs.
            let drop: Vec<PauseId> = entries
                .keys()
                .take(self.capacity / 10 + 1)
                .copied()
                .collect();
            for id in drop {
                entries.remove(&id);
            }
        }
        entries.insert(
            PauseId::from(pause.pause_id),
            Arc::new((project_id, pause.clone())),
        );
    }

    fn forget(&self, id: PauseId) {
        let mut entries = lock(&self.entries);
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        entries.remove(&id);
    }

    /// How many pauses are kept.
    pub fn len(&self) -> usize {
        lock(&self.entries).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A poisoned lock here only means a panic elsewhere; the data stays consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One waiter's interest in one pause.
pub struct Subscription {
    hub: Arc<Hub>,
    pause_id: PauseId,
    notify: Arc<Notify>,
}

impl Subscription {
    /// The wake-up signal. Enable the returned future before reading the pause, so that
    /// a decision made between the read and the wait is not missed.
    pub fn notify(&self) -> &Notify {
        &self.notify
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut waiting = lock(&self.hub.waiting);
        // Two references left: the map's and ours. Then nobody else waits on this pause.
        if Arc::strong_count(&self.notify) <= 2 {
            waiting.remove(&self.pause_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_new_pause_rings_the_timeout_worker_only_when_its_deadline_is_sooner() {
        let hub = Hub::new();
        let at = |s: i64| Timestamp::from_second(1_800_000_000 + s).unwrap();
        hub.set_next_deadline(Some(at(100)));
        let later = Change::PauseCreated {
            pause_id: PauseId::new(),
            channel: Channel::Sms,
            expires_at: at(200),
            handed_over: false,
        };
        hub.publish(&[later]);
        let rung = tokio::time::timeout(
            std::time::Duration::from_millis(20),
            hub.bell(Bell::Timeouts).notified(),
        )
        .await;
        assert!(rung.is_err(), "a later deadline does not ring");

        let sooner = Change::PauseCreated {
            pause_id: PauseId::new(),
            channel: Channel::Sms,
            expires_at: at(50),
            handed_over: false,
        };
        hub.publish(&[sooner]);
        hub.bell(Bell::Timeouts).notified().await;
    }

    #[tokio::test]
    async fn a_decision_wakes_every_waiter_of_its_pause_and_only_them() {
        let hub = Hub::new();
        let id = PauseId::new();
        let first = hub.subscribe(id);
        let second = hub.subscribe(id);
        let other = hub.subscribe(PauseId::new());
        assert_eq!(hub.watched(), 2);
        {
            let (a, b, c) = (
                first.notify().notified(),
                second.notify().notified(),
                other.notify().notified(),
            );
            tokio::pin!(a, b, c);
            a.as_mut().enable();
            b.as_mut().enable();
            c.as_mut().enable();
            hub.publish(&[Change::PauseDecided {
                pause_id: id,
                channel: Channel::Sms,
                outcome: PauseStatus::Cancelled,
                waited_ms: 1,
            }]);
            a.await;
            b.await;
            assert!(
                tokio::time::timeout(std::time::Duration::from_millis(20), c)
                    .await
                    .is_err()
            );
        }
        drop((first, second, other));
        assert_eq!(hub.watched(), 0);
    }
}
