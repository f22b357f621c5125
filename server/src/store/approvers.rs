//! Approvers: one row per person asked to decide a pause, with their own view and vote.
//! A vote is counted by one conditional UPDATE of the pause row (which locks it, so racing
//! votes are counted one after the other, on every server) and recorded by one conditional
//! UPDATE of the approver's row (so each approver votes once).

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use pausepoint_api::validation::{NewPause, MAX_REMINDERS};
use pausepoint_api::{Approver, Decision, Delivery, DeliveryStatus, Vote};
use serde::Deserialize;

use super::db::{args, Conn};
use super::deliveries::DeliveryKey;
use super::pauses::{lowest_id_since, millis};
use super::tx::Draft;
use super::{StoreError, Tx};
use crate::ids::{PauseId, ProjectId};

const TABLE: &str = "approvers";

/// The votes of a pause so far, as counted by a vote's UPDATE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Votes for the quorum's option, this one included.
    pub approvals: u32,
    /// The option that needs several votes, and how many.
    pub quorum: Option<(String, u32)>,
}

impl Tally {
    /// Whether a vote for `choice`, counted in this tally, decides the pause: without a
    /// quorum every vote does; with one, the option at its count, and any other at once.
    pub fn decides(&self, choice: &str) -> bool {
        match &self.quorum {
            None => true,
            Some((option, count)) => choice != option || self.approvals >= *count,
        }
    }
}

/// An approver as [`super::pauses`] reads it, one JSON array per approver:
/// `[approver, channel, recipient, tier, notify_at, viewed_at, vote_choice, vote_text,
/// vote_at, delivery status, delivery attempts, delivery last_error]`, times in
/// milliseconds as stored.
#[derive(Deserialize)]
struct ApproverRow(
    u32,
    String,
    String,
    u32,
    i64,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<u32>,
    Option<String>,
);

/// The approvers of a pause from the JSON its read aggregated (NULL on PostgreSQL when it
/// has none), in their order.
pub(super) fn from_json(json: Option<String>) -> Result<Vec<Approver>, StoreError> {
    let corrupt = |detail: String| StoreError::corrupt(TABLE, detail);
    let Some(json) = json else {
        return Ok(Vec::new());
    };
    let mut rows: Vec<ApproverRow> =
        serde_json::from_str(&json).map_err(|e| corrupt(format!("approvers: {e}")))?;
    rows.sort_by_key(|row| row.0);
    // Collected into a new Vec of exactly their number: cached pauses keep it, and one
    // collected in place would keep the parsed rows' larger allocation.
    let mut approvers = Vec::with_capacity(rows.len());
    let time =
        |ms: i64| Timestamp::from_millisecond(ms).map_err(|e| corrupt(format!("approvers: {e}")));
    for row in rows {
        let ApproverRow(
            _,
            channel,
            recipient,
            tier,
            notify_at,
            viewed_at,
            vote_choice,
            vote_text,
            vote_at,
            delivery_status,
            delivery_attempts,
            delivery_last_error,
        ) = row;
        let vote = match (vote_choice, vote_at) {
            (Some(choice), Some(at)) => Some(Vote {
                choice,
                text: vote_text,
                at: time(at)?,
            }),
            _ => None,
        };
        let delivery = match delivery_status {
            None => None,
            Some(status) => Some(Delivery {
                status: status.parse().map_err(corrupt)?,
                attempts: delivery_attempts.unwrap_or(0),
                last_error: delivery_last_error,
            }),
        };
        approvers.push(Approver {
            recipient,
            channel: channel.parse().map_err(corrupt)?,
            tier,
            notify_at: time(notify_at)?,
            delivery,
            viewed_at: viewed_at.map(time).transpose()?,
            vote,
        });
    }
    Ok(approvers)
}

/// A question open to one approver: the pause is pending and before its deadline, the
/// approver was asked and has not answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenQuestion {
    pub project_id: ProjectId,
    pub pause_id: PauseId,
    pub approver: u32,
}

impl Conn {
    /// Up to `limit` questions open at `now` to this phone number, newest first (through
    /// `approvers_open_by_recipient`, in its order, so it reads little past the newest).
    ///
    /// The index keeps every question the number never answered, closed ones too (a pause
    /// that timed out, or that another approver decided). So that a number's history does
    /// not make every SMS slower, the walk stops at the pauses created before the longest
    /// timeout any project allows: none of those can still be open.
    pub async fn open_sms_questions(
        &mut self,
        number: &str,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<OpenQuestion>, StoreError> {
        let longest = self
            .fetch_one(
                "projects",
                "SELECT MAX(max_timeout_seconds) AS longest FROM projects",
                &[],
                |row| row.opt_int("longest"),
            )
            .await?
            .unwrap_or(0);
        let oldest = lowest_id_since(now - SignedDuration::from_secs(longest.max(0)));
        self.fetch_all(
            TABLE,
            // The pause is looked up by its key for each approver row, in a subquery the
            // planner cannot turn into a join: on PostgreSQL tables not analyzed yet, a join
            // was planned as a scan of every pending pause per approver row (183 ms with
            // 1,500 questions open to one number, on every SMS sent).
            "SELECT (SELECT p.project_id FROM pauses p WHERE p.id = a.pause_id) AS project_id, \
                    a.pause_id, a.approver \
             FROM approvers a \
             WHERE a.recipient = $1 AND a.channel = 'sms' AND a.vote_at IS NULL \
               AND a.pause_id >= $4 AND a.notify_at <= $2 \
               AND (SELECT p.status = 'pending' AND p.expires_at > $2 \
                    FROM pauses p WHERE p.id = a.pause_id) \
             ORDER BY a.pause_id DESC, a.approver LIMIT $3",
            args![number, now, limit, &oldest],
            |row| {
                Ok(OpenQuestion {
                    project_id: row.uuid("project_id")?.into(),
                    pause_id: row.uuid("pause_id")?.into(),
                    approver: row.count("approver")?,
                })
            },
        )
        .await
    }

    /// The last question asked of this phone number by `now`, whatever became of it
    /// (through `approvers_by_recipient`, newest first).
    pub async fn last_sms_question(
        &mut self,
        number: &str,
        now: Timestamp,
    ) -> Result<Option<OpenQuestion>, StoreError> {
        self.fetch_optional(
            TABLE,
            "SELECT (SELECT p.project_id FROM pauses p WHERE p.id = a.pause_id) AS project_id, \
                    a.pause_id, a.approver \
             FROM approvers a \
             WHERE a.recipient = $1 AND a.channel = 'sms' AND a.notify_at <= $2 \
             ORDER BY a.pause_id DESC LIMIT 1",
            args![number, now],
            |row| {
                Ok(OpenQuestion {
                    project_id: row.uuid("project_id")?.into(),
                    pause_id: row.uuid("pause_id")?.into(),
                    approver: row.count("approver")?,
                })
            },
        )
        .await
    }
}

impl Draft {
    /// Stores the approvers of a new pause and every notice they are due: the first at
    /// `created_at` (an escalation tier's later), and a reminder every `remind_every`
    /// after it while before the deadline, at most [`MAX_REMINDERS`]. The notices due at
    /// `created_at` are leased until `handover` when given, and their keys returned: they
    /// go to this server's delivery worker with no claim.
    pub(crate) fn insert_approvers(
        &mut self,
        project_id: ProjectId,
        pause_id: PauseId,
        pause: &NewPause,
        (created_at, expires_at): (Timestamp, Timestamp),
        handover: Option<Timestamp>,
    ) -> (Vec<Approver>, Vec<DeliveryKey>) {
        let mut approvers = Vec::with_capacity(pause.approvers.len());
        let mut handed = Vec::new();
        for (index, approver) in pause.approvers.iter().enumerate() {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            let notify_at = later(created_at, approver.after);
            let channel = approver.recipient.channel();
            self.defer(
                "INSERT INTO approvers (pause_id, approver, channel, recipient, tier, notify_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                args![
                    &pause_id.to_string(),
                    index,
                    channel.as_str(),
                    approver.recipient.as_str(),
                    approver.tier,
                    notify_at
                ],
            );
            let mut due = notify_at;
            for reminder in 0..=MAX_REMINDERS {
                if reminder > 0 {
                    let Some(every) = pause.remind_every else {
                        break;
                    };
                    due = later(due, every);
                    if due >= expires_at {
                        break;
                    }
                }
                let key = DeliveryKey {
                    pause_id,
                    approver: index,
                    reminder,
                };
                let lease_until = handover.filter(|_| due <= created_at);
                if lease_until.is_some() {
                    handed.push(key);
                }
                self.insert_delivery(project_id, key, channel, due, lease_until, created_at);
            }
            approvers.push(Approver {
                recipient: approver.recipient.as_str().to_owned(),
                channel,
                tier: approver.tier,
                notify_at: millis(notify_at),
                delivery: Some(Delivery {
                    status: DeliveryStatus::Pending,
                    attempts: 0,
                    last_error: None,
                }),
                viewed_at: None,
                vote: None,
            });
        }
        (approvers, handed)
    }
}

impl Tx {
    /// Counts a vote for `choice` on the pause, if it is pending and before its deadline,
    /// and locks the pause row until the transaction ends.
    pub async fn count_vote(
        &mut self,
        project_id: ProjectId,
        pause_id: PauseId,
        choice: &str,
        now: Timestamp,
    ) -> Result<Option<Tally>, StoreError> {
        self.fetch_optional(
            "pauses",
            "UPDATE pauses \
             SET approvals = approvals + CASE WHEN quorum_option = $3 THEN 1 ELSE 0 END \
             WHERE id = $1 AND project_id = $2 AND status = 'pending' AND expires_at > $4 \
             RETURNING approvals, quorum_option, quorum_count",
            args![&pause_id.to_string(), &project_id.to_string(), choice, now],
            |row| {
                let quorum = match row.opt_text("quorum_option")? {
                    Some(option) => Some((option, row.count("quorum_count")?)),
                    None => None,
                };
                Ok(Tally {
                    approvals: row.count("approvals")?,
                    quorum,
                })
            },
        )
        .await
    }

    /// Records the approver's vote; false when they had already voted.
    pub async fn record_vote(
        &mut self,
        pause_id: PauseId,
        approver: u32,
        decision: &Decision,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let updated = self
            .execute(
                "UPDATE approvers SET vote_choice = $3, vote_text = $4, vote_at = $5 \
                 WHERE pause_id = $1 AND approver = $2 AND vote_at IS NULL",
                args![
                    &pause_id.to_string(),
                    approver,
                    decision.choice.as_str(),
                    decision.text.as_deref(),
                    now
                ],
            )
            .await?;
        Ok(updated == 1)
    }

    /// Brings the next escalation tier forward to `now` when no approver up to the tier
    /// of `approver` can still be reached: every first notice up to that tier (`failed`
    /// aside, which is being recorded as failed) has failed or was not delivered. Waiting
    /// out the tier's time would only wait for nobody.
    pub(crate) fn escalate_if_unreachable(
        &mut self,
        pause_id: PauseId,
        approver: u32,
        failed: &str,
        now: Timestamp,
    ) {
        self.defer(
            "UPDATE deliveries SET next_attempt_at = $2 \
             WHERE id IN ( \
                   SELECT pause_id || ':' || approver || ':0' FROM approvers \
                   WHERE pause_id = $1 AND tier = ( \
                       SELECT MIN(tier) FROM approvers WHERE pause_id = $1 AND tier > ( \
                           SELECT tier FROM approvers WHERE pause_id = $1 AND approver = $3))) \
               AND status = 'pending' AND next_attempt_at > $2 \
               AND NOT EXISTS ( \
                   SELECT 1 FROM approvers a JOIN deliveries d \
                     ON d.id = a.pause_id || ':' || a.approver || ':0' \
                   WHERE a.pause_id = $1 AND d.id <> $4 \
                     AND a.tier <= ( \
                         SELECT tier FROM approvers WHERE pause_id = $1 AND approver = $3) \
                     AND d.status IN ('pending', 'sent', 'logged', 'delivered'))",
            args![&pause_id.to_string(), now, approver, failed],
        );
    }

    /// Marks the pause as opened by this approver; true only the first time.
    pub async fn mark_viewed(
        &mut self,
        pause_id: PauseId,
        approver: u32,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let updated = self
            .execute(
                "UPDATE approvers SET viewed_at = $3 \
                 WHERE pause_id = $1 AND approver = $2 AND viewed_at IS NULL",
                args![&pause_id.to_string(), approver, now],
            )
            .await?;
        Ok(updated == 1)
    }
}

fn later(at: Timestamp, after: Duration) -> Timestamp {
    SignedDuration::try_from(after)
        .ok()
        .and_then(|after| at.checked_add(after).ok())
        .unwrap_or(at)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use pausepoint_api::{Channel, DeliveryStatus};

    use super::from_json;
    use crate::store::StoreError;

    #[test]
    fn approvers_come_in_their_order_with_votes_and_first_notices() {
        // As SQLite's json_group_array or PostgreSQL's json_agg may give them: any order.
        let json = r#"[
            [1, "email", "cfo@example.com", 1, 1764000060000, null, null, null, null, "pending", 0, null],
            [0, "sms", "+15551234567", 0, 1764000000000, 1764000030000, "Approve", "ok", 1764000040000, "delivered", 1, null]
        ]"#;
        let approvers = from_json(Some(json.to_owned())).unwrap();
        assert_eq!(approvers.len(), 2);
        assert_eq!(approvers.capacity(), 2, "cached pauses keep no spare room");
        let first = &approvers[0];
        assert_eq!(first.recipient, "+15551234567");
        assert_eq!(first.channel, Channel::Sms);
        assert_eq!(first.viewed_at.unwrap().as_millisecond(), 1_764_000_030_000);
        let vote = first.vote.as_ref().unwrap();
        assert_eq!(
            (vote.choice.as_str(), vote.text.as_deref()),
            ("Approve", Some("ok"))
        );
        assert_eq!(
            first.delivery.as_ref().unwrap().status,
            DeliveryStatus::Delivered
        );
        let second = &approvers[1];
        assert_eq!((second.tier, second.vote.is_none()), (1, true));
        assert_eq!(second.delivery.as_ref().unwrap().attempts, 0);
    }

    /// A number's open questions are found however old, up to the longest timeout a
    /// project allows; pauses created before that are not read (none can be open).
    #[tokio::test]
    async fn open_questions_are_looked_for_back_to_the_longest_timeout() {
        use jiff::{SignedDuration, Timestamp};

        use crate::ids::PauseId;
        use crate::store::db::args;
        use crate::store::Store;

        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db").display().to_string(), None)
            .await
            .unwrap();
        let now = Timestamp::now();
        let days_ago = move |n: i64| now - SignedDuration::from_hours(24 * n);
        // Ids as the server makes them, from their creation time (made here: the server's
        // own maker never goes back in time within a process).
        let id_at = |at: Timestamp| {
            let ms = u64::try_from(at.as_millisecond()).unwrap();
            PauseId::from(uuid::Builder::from_unix_timestamp_millis(ms, &[7; 10]).into_uuid())
        };
        // Open for a day more: made 29 days ago under the default 30-day cap. And one made
        // 31 days ago and still open, which no 30-day cap allows: it stands for the closed
        // questions the walk must not read.
        let pauses = [(id_at(days_ago(29)), 29, 1), (id_at(days_ago(31)), 31, 10)];
        store
            .write(move |tx| {
                Box::pin(async move {
                    let (project, _) = tx.ensure_project("default", now).await?;
                    for (id, age, left) in pauses {
                        let (created, expires) =
                            (days_ago(age), now + SignedDuration::from_hours(24 * left));
                        tx.execute(
                            "INSERT INTO pauses (id, project_id, status, channel, recipient, \
                                 message, options, allow_text_response, created_at, expires_at) \
                             VALUES ($1, $2, 'pending', 'sms', '+15550100', 'Wire?', \
                                 '[\"Approve\",\"Reject\"]', 0, $3, $4)",
                            args![&id.to_string(), &project.id.to_string(), created, expires],
                        )
                        .await?;
                        tx.execute(
                            "INSERT INTO approvers (pause_id, approver, channel, recipient, tier, \
                                 notify_at) VALUES ($1, 0, 'sms', '+15550100', 0, $2)",
                            args![&id.to_string(), created],
                        )
                        .await?;
                    }
                    Ok::<_, StoreError>(())
                })
            })
            .await
            .unwrap();
        let found = || async {
            let open = store
                .read(move |conn| {
                    Box::pin(async move { conn.open_sms_questions("+15550100", now, 5).await })
                })
                .await
                .unwrap();
            open.iter().map(|q| q.pause_id).collect::<Vec<_>>()
        };
        assert_eq!(found().await, [pauses[0].0]);

        // A project that allows 40 days makes the walk go back 40 days.
        store
            .write(|tx| {
                Box::pin(async move {
                    tx.execute(
                        "UPDATE projects SET max_timeout_seconds = $1",
                        args![40 * 86_400_i64],
                    )
                    .await
                })
            })
            .await
            .unwrap();
        assert_eq!(found().await, [pauses[0].0, pauses[1].0]);
    }

    #[test]
    fn no_approvers_is_an_empty_list_and_a_bad_row_is_corruption() {
        // PostgreSQL's json_agg of no rows is NULL; SQLite's json_group_array is [].
        assert!(from_json(None).unwrap().is_empty());
        assert!(from_json(Some("[]".to_owned())).unwrap().is_empty());
        let bad = r#"[[0, "pigeon", "x", 0, 0, null, null, null, null, null, null, null]]"#;
        assert!(from_json(Some(bad.to_owned())).is_err());
        assert!(from_json(Some("[[0]]".to_owned())).is_err());
    }
}
