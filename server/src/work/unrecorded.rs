//! Notices this server has sent and not yet recorded. The delivery worker records its
//! attempts in batches, a few milliseconds after they finish; a human who answers within
//! those milliseconds would otherwise have their answer in the audit log before the
//! record of the notice that asked them. An answer waits for the records of its pause's
//! notices first, and asks the worker to write them now rather than at the batch's time.
//!
//! Only this server's notices are known here: an answer that reaches another server
//! does not wait (see the README's "Several servers").

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

use crate::ids::PauseId;

/// The longest an answer waits for its notices' records: a record is one write, and a
/// database too slow for this fails the answer's own write too.
const WAIT_AT_MOST: Duration = Duration::from_secs(2);

#[derive(Default)]
pub struct Unrecorded {
    /// How many sent notices of each pause wait for their record.
    sent: Mutex<HashMap<PauseId, usize>>,
    /// Rung when records are written (or have failed): waiting answers look again.
    recorded: Notify,
    /// Rung by an answer that waits: the worker records what it holds at once.
    flush: Notify,
}

impl Unrecorded {
    /// A notice of `pause` was sent; its record is to come.
    pub fn sent(&self, pause: PauseId) {
        *lock(&self.sent).entry(pause).or_default() += 1;
    }

    /// The attempts of `pauses` were recorded, or their record failed (then their leases
    /// run out and they go again; nothing is left to wait for).
    pub fn recorded(&self, pauses: impl IntoIterator<Item = PauseId>) {
        {
            let mut sent = lock(&self.sent);
            for pause in pauses {
                if let Some(count) = sent.get_mut(&pause) {
                    *count -= 1;
                    if *count == 0 {
                        sent.remove(&pause);
                    }
                }
            }
        }
        self.recorded.notify_waiters();
    }

    /// Waits until no sent notice of `pause` waits for its record, asking the worker to
    /// write its records now; gives up after [`WAIT_AT_MOST`].
    pub async fn settle(&self, pause: PauseId) {
        self.settle_within(pause, WAIT_AT_MOST).await;
    }

    async fn settle_within(&self, pause: PauseId, at_most: Duration) {
        let deadline = tokio::time::Instant::now() + at_most;
        loop {
            let recorded = self.recorded.notified();
            tokio::pin!(recorded);
            recorded.as_mut().enable();
            if !lock(&self.sent).contains_key(&pause) {
                return;
            }
            self.flush.notify_one();
            tokio::select! {
                () = recorded => {}
                () = tokio::time::sleep_until(deadline) => {
                    tracing::warn!(pause_id = %pause, "an answer did not wait longer for its notice's record");
                    return;
                }
            }
        }
    }

    /// Rung when an answer waits for records the worker holds.
    pub fn flush(&self) -> &Notify {
        &self.flush
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn an_answer_waits_for_its_notices_records_and_asks_for_them() {
        let unrecorded = Arc::new(Unrecorded::default());
        let (pause, other) = (PauseId::new(), PauseId::new());
        unrecorded.sent(pause);
        unrecorded.sent(pause);
        // Nothing of another pause to wait for.
        unrecorded.settle(other).await;

        let waiting = tokio::spawn({
            let unrecorded = Arc::clone(&unrecorded);
            async move { unrecorded.settle(pause).await }
        });
        // The worker is asked to record now.
        tokio::time::timeout(Duration::from_secs(5), unrecorded.flush().notified())
            .await
            .expect("the worker is asked to flush");
        unrecorded.recorded([pause]);
        assert!(!waiting.is_finished());
        unrecorded.recorded([pause]);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the answer goes on once both are recorded")
            .unwrap();
    }

    #[tokio::test]
    async fn an_answer_waits_no_longer_than_its_limit() {
        let unrecorded = Unrecorded::default();
        let pause = PauseId::new();
        unrecorded.sent(pause);
        let started = tokio::time::Instant::now();
        unrecorded
            .settle_within(pause, Duration::from_millis(50))
            .await;
        assert!(started.elapsed() >= Duration::from_millis(50));
    }
}
