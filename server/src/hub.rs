//! Long-poll wake-ups: a waiter on a pause subscribes before it reads the pause, and
//! whoever decides the pause wakes every subscriber at once. One `Notify` per watched
//! pause, dropped with its last subscriber, so thousands of waiters cost a map entry each
//! and a decision wakes only the waiters of that pause.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use uuid::Uuid;

/// The registry of pauses somebody is waiting on.
#[derive(Default)]
pub struct Wakeups {
    waiting: Mutex<HashMap<Uuid, Arc<Notify>>>,
}

impl Wakeups {
    /// Registers interest in `pause_id` until the returned subscription is dropped.
    pub fn subscribe(self: &Arc<Self>, pause_id: Uuid) -> Subscription {
        let notify = self.lock().entry(pause_id).or_default().clone();
        Subscription {
            wakeups: Arc::clone(self),
            pause_id,
            notify,
        }
    }

    /// Wakes everyone waiting on `pause_id`.
    pub fn wake(&self, pause_id: Uuid) {
        if let Some(notify) = self.lock().get(&pause_id) {
            notify.notify_waiters();
        }
    }

    /// How many pauses have waiters (for metrics and tests).
    pub fn watched(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, Arc<Notify>>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One waiter's interest in one pause.
pub struct Subscription {
    wakeups: Arc<Wakeups>,
    pause_id: Uuid,
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
        let mut waiting = self.wakeups.lock();
        // Two references left: the map's and ours. Then nobody else waits on this pause.
        if Arc::strong_count(&self.notify) <= 2 {
            waiting.remove(&self.pause_id);
        }
    }
}
