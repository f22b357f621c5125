//! Delivery rows: one per approver and notice (the first, then each reminder), written
//! with the pause, so a notification survives a crash and an escalation or a reminder is
//! a row due at its time.
//! Workers take them through the [`super::outbox`] like any other pending work.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use pausepoint_api::{Approver, Channel, DeliveryStatus, Pause};

use super::db::{args, Arg, Conn};
use super::tx::Draft;
use super::{StoreError, Tx};
use crate::ids::{PauseId, ProjectId};

/// Where a delivery ends after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Try again at the given time.
    Retry(Timestamp),
    Sent,
    Logged,
    Failed,
}

impl DeliveryState {
    /// The status it leaves the delivery in, and when the delivery is next due.
    fn status(self, now: Timestamp) -> (DeliveryStatus, Timestamp) {
        match self {
            DeliveryState::Retry(at) => (DeliveryStatus::Pending, at),
            DeliveryState::Sent => (DeliveryStatus::Sent, now),
            DeliveryState::Logged => (DeliveryStatus::Logged, now),
            DeliveryState::Failed => (DeliveryStatus::Failed, now),
        }
    }
}

/// A delivery's key: the pause, the approver, and which notice (0 the first, then the
/// reminders). Written `{pause_id}:{approver}:{reminder}`, the outbox's one key column.
/// Reads find a pause's notices by this key (a first notice is `{pause_id}:{approver}:0`,
/// written out in SQL where they join) or by [`Self::range`], never through
/// `deliveries_by_pause`, which only servers of the version before still read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeliveryKey {
    pub pause_id: PauseId,
    pub approver: u32,
    pub reminder: u32,
}

impl DeliveryKey {
    /// The keys of every notice of the pause (of one approver, if named): the half-open
    /// range `[from, to)` of key texts that start with `{pause_id}:` (or
    /// `{pause_id}:{approver}:`). Keys compare bytewise (`COLLATE "C"`, SQLite's `BINARY`),
    /// `;` is the byte after `:`, and neither a pause id nor a number holds a `:`.
    pub(crate) fn range(pause_id: PauseId, approver: Option<u32>) -> (String, String) {
        let prefix = match approver {
            None => format!("{pause_id}"),
            Some(approver) => format!("{pause_id}:{approver}"),
        };
        (format!("{prefix}:"), format!("{prefix};"))
    }
}

impl fmt::Display for DeliveryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.pause_id, self.approver, self.reminder)
    }
}

impl FromStr for DeliveryKey {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.split(':');
        let (Some(pause_id), Some(approver), Some(reminder), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("{s:?} is not a delivery key"));
        };
        Ok(DeliveryKey {
            pause_id: pause_id.parse().map_err(|e| format!("{s:?}: {e}"))?,
            approver: approver.parse().map_err(|e| format!("{s:?}: {e}"))?,
            reminder: reminder.parse().map_err(|e| format!("{s:?}: {e}"))?,
        })
    }
}

/// A delivery a provider's report changed.
#[derive(Debug, Clone, Copy)]
pub struct Reported {
    pub key: DeliveryKey,
    pub project_id: ProjectId,
}

/// A claimed delivery, with what sending it needs.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub key: DeliveryKey,
    pub project_id: ProjectId,
    pub project_name: String,
    pub pause: Pause,
    /// Attempts made so far at this delivery.
    pub attempts: u32,
}

impl DueDelivery {
    /// The approver this delivery reaches.
    pub fn approver(&self) -> Option<&Approver> {
        self.pause.approvers.get(self.key.approver as usize)
    }
}

impl Draft {
    /// Writes a pending delivery, due at `due`; leased until `lease_until` when it goes
    /// to this server's delivery worker without a claim (see [`crate::work::handover`]).
    pub(crate) fn insert_delivery(
        &mut self,
        project_id: ProjectId,
        key: DeliveryKey,
        channel: Channel,
        due: Timestamp,
        lease_until: Option<Timestamp>,
        now: Timestamp,
    ) {
        self.defer(
            "INSERT INTO deliveries (id, pause_id, approver, reminder, project_id, channel, \
                 status, next_attempt_at, lease_until, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            args![
                &key.to_string(),
                &key.pause_id.to_string(),
                key.approver,
                key.reminder,
                &project_id.to_string(),
                channel.as_str(),
                DeliveryStatus::Pending.as_str(),
                due,
                lease_until,
                now
            ],
        );
    }
}

impl Tx {
    /// Records attempt number `attempt` and releases the lease; `reference` is the
    /// provider's id of the message it accepted, for its later reports.
    pub fn record_delivery_attempt(
        &mut self,
        key: DeliveryKey,
        attempt: u32,
        state: DeliveryState,
        error: Option<&str>,
        reference: Option<&str>,
        now: Timestamp,
    ) {
        let (status, next) = state.status(now);
        self.defer(
            "UPDATE deliveries \
             SET status = $2, attempts = $3, last_error = $4, next_attempt_at = $5, \
                 lease_until = NULL, updated_at = $6, provider_ref = $7 \
             WHERE id = $1",
            args![
                &key.to_string(),
                status.as_str(),
                attempt,
                error,
                next,
                now,
                reference
            ],
        );
    }

    /// Takes a provider's report on a message it accepted (`reference`): `delivered` or
    /// `undelivered`/`failed` with the reason. Only a delivery still `sent` changes, so a
    /// report repeated or late changes nothing. Returns the delivery it changed.
    pub async fn record_delivery_report(
        &mut self,
        reference: &str,
        status: DeliveryStatus,
        error: Option<&str>,
        now: Timestamp,
    ) -> Result<Option<Reported>, StoreError> {
        self.fetch_optional(
            "deliveries",
            "UPDATE deliveries SET status = $2, last_error = COALESCE($3, last_error), \
                 updated_at = $4 \
             WHERE provider_ref = $1 AND status = 'sent' \
             RETURNING id, project_id",
            args![reference, status.as_str(), error, now],
            |row| {
                Ok(Reported {
                    key: row
                        .text("id")?
                        .parse()
                        .map_err(|e: String| StoreError::corrupt("deliveries", e))?,
                    project_id: row.uuid("project_id")?.into(),
                })
            },
        )
        .await
    }

    /// Puts a delivery back unsent and unattempted, due at `start`: its provider's rate
    /// gives it that turn.
    pub fn pace_delivery(&mut self, key: DeliveryKey, start: Timestamp) {
        self.defer(
            "UPDATE deliveries SET next_attempt_at = $2, lease_until = NULL \
             WHERE id = $1 AND status = 'pending'",
            args![&key.to_string(), start],
        );
    }

    /// Gives up on a delivery that is no longer wanted (its pause was decided, or its
    /// approver answered, before it could be sent).
    pub fn skip_delivery(&mut self, key: DeliveryKey, now: Timestamp) {
        self.defer(
            "UPDATE deliveries SET status = 'skipped', lease_until = NULL, updated_at = $2 \
             WHERE id = $1 AND status = 'pending'",
            args![&key.to_string(), now],
        );
    }

    /// Gives up on every notice of the pause not sent yet (of one approver, if named): a
    /// decided pause, or an approver who answered, is not asked again.
    pub fn skip_deliveries_of(&mut self, pause_id: PauseId, approver: Option<u32>, now: Timestamp) {
        let (from, to) = DeliveryKey::range(pause_id, approver);
        self.defer(
            "UPDATE deliveries SET status = 'skipped', updated_at = $3 \
             WHERE id >= $1 AND id < $2 AND status = 'pending' AND lease_until IS NULL",
            args![&from, &to, now],
        );
    }
}

impl Conn {
    /// The claimed deliveries with these keys, each with its pause (approvers included)
    /// and its project's name.
    pub async fn due_deliveries(
        &mut self,
        keys: &[String],
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let mut rows: Vec<(DeliveryKey, u32)> = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(100) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT id, attempts FROM deliveries WHERE id IN ({})",
                placeholders.join(", ")
            );
            let args: Vec<Arg<'_>> = chunk.iter().map(Arg::from).collect();
            rows.extend(
                self.fetch_all("deliveries", &sql, &args, |row| {
                    let key = row
                        .text("id")?
                        .parse()
                        .map_err(|e: String| StoreError::corrupt("deliveries", e))?;
                    Ok((key, row.count("attempts")?))
                })
                .await?,
            );
        }
        let mut ids: Vec<String> = rows.iter().map(|(k, _)| k.pause_id.to_string()).collect();
        ids.sort();
        ids.dedup();
        let mut pauses = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(100) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "{} WHERE p.id IN ({})",
                super::pauses::select_with_project(self.dialect()),
                placeholders.join(", ")
            );
            let args: Vec<Arg<'_>> = chunk.iter().map(Arg::from).collect();
            pauses.extend(
                self.fetch_all("pauses", &sql, &args, |row| {
                    let (project_id, pause) = super::pauses::with_project(row)?;
                    Ok((project_id, row.text("project_name")?, pause))
                })
                .await?,
            );
        }
        let pauses: HashMap<PauseId, (ProjectId, String, Pause)> = pauses
            .into_iter()
            .map(|(project_id, name, pause)| {
                (PauseId::from(pause.pause_id), (project_id, name, pause))
            })
            .collect();
        Ok(rows
            .into_iter()
            .filter_map(|(key, attempts)| {
                let (project_id, project_name, pause) = pauses.get(&key.pause_id)?.clone();
                Some(DueDelivery {
                    key,
                    project_id,
                    project_name,
                    pause,
                    attempts,
                })
            })
            .collect())
    }
}
