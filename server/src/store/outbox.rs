//! Rows of work that must survive a crash (deliveries to humans, webhook events) and the
//! one way workers take them: a row is due at `next_attempt_at`, a worker claims a batch
//! with one UPDATE (skipping rows other servers are claiming) and a lease, and a crashed
//! holder's lease runs out. A new pause's first notices are written already leased to the
//! server that created them, which sends them with no claim ([`crate::work::handover`]).

use jiff::Timestamp;

use super::db::{args, Conn};
use super::{StoreError, Tx};

/// A table of pending work, and the column that names a row.
#[derive(Debug, Clone, Copy)]
pub struct Outbox {
    table: &'static str,
    key: &'static str,
}

impl Outbox {
    /// The table's name, for logs.
    pub fn name(&self) -> &'static str {
        self.table
    }
}

/// One delivery per approver and notice, to its human.
pub const DELIVERIES: Outbox = Outbox {
    table: "deliveries",
    key: "id",
};
/// Webhook events, to the pause's `webhook_url`.
pub const WEBHOOK_EVENTS: Outbox = Outbox {
    table: "webhook_events",
    key: "id",
};

impl Tx {
    /// Claims up to `limit` rows due at `now` and held by nobody, until `lease_until`, in
    /// one statement; returns their keys. Servers claiming at once get different rows.
    pub async fn claim_due(
        &mut self,
        outbox: Outbox,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        let sql = format!(
            "UPDATE {table} SET lease_until = $2 WHERE {key} IN ( \
                 SELECT {key} FROM {table} \
                 WHERE status = 'pending' AND next_attempt_at <= $1 \
                   AND (lease_until IS NULL OR lease_until <= $1) \
                 ORDER BY next_attempt_at LIMIT $3 {lock}) \
             RETURNING {key} AS key",
            key = outbox.key,
            table = outbox.table,
            lock = self.dialect().skip_locked()
        );
        self.fetch_all(outbox.table, &sql, args![now, lease_until, limit], |row| {
            row.text("key")
        })
        .await
    }

    /// Gives claimed rows back unsent, due at once: for a server that stops mid-batch.
    pub async fn release(&mut self, outbox: Outbox, keys: &[String]) -> Result<(), StoreError> {
        let sql = format!(
            "UPDATE {table} SET lease_until = NULL WHERE {key} = $1 AND status = 'pending'",
            key = outbox.key,
            table = outbox.table,
        );
        for key in keys {
            self.execute(&sql, args![key]).await?;
        }
        Ok(())
    }

    /// Releases every lease, at start. Only where one server owns the database (SQLite):
    /// then any lease left is a crashed process's, and its work can go out at once.
    /// Servers sharing a database wait for leases to run out instead.
    pub async fn release_leases_of_a_crashed_server(
        &mut self,
        outbox: Outbox,
    ) -> Result<u64, StoreError> {
        if !self.dialect().single_server() {
            return Ok(0);
        }
        let sql = format!(
            "UPDATE {} SET lease_until = NULL WHERE status = 'pending' AND lease_until IS NOT NULL",
            outbox.table
        );
        self.execute(&sql, &[]).await
    }
}

/// How far behind an outbox is at some moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    /// Rows due and held by nobody.
    pub due: i64,
    /// When the oldest of them came due.
    pub oldest: Option<Timestamp>,
    /// Rows not done yet, due or not, held or not.
    pub queued: i64,
}

impl Conn {
    /// How far behind `outbox` is at `now` (read through its index of pending rows, so its
    /// cost grows with the queue, not with every row ever done).
    pub async fn backlog(&mut self, outbox: Outbox, now: Timestamp) -> Result<Backlog, StoreError> {
        let sql = format!(
            "SELECT COUNT(*) AS queued, \
                    SUM(CASE WHEN next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until <= $1) \
                             THEN 1 ELSE 0 END) AS due, \
                    MIN(CASE WHEN next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until <= $1) \
                             THEN next_attempt_at END) AS oldest \
             FROM {} WHERE status = 'pending'",
            outbox.table
        );
        self.fetch_one(outbox.table, &sql, args![now], |row| {
            Ok(Backlog {
                due: row.opt_int("due")?.unwrap_or(0),
                oldest: row.opt_time("oldest")?,
                queued: row.int("queued")?,
            })
        })
        .await
    }

    /// When the next pending row is due (or its lease runs out).
    pub async fn outbox_next_at(
        &mut self,
        outbox: Outbox,
    ) -> Result<Option<Timestamp>, StoreError> {
        let sql = format!(
            "SELECT MIN(CASE WHEN lease_until IS NOT NULL AND lease_until > next_attempt_at \
                             THEN lease_until ELSE next_attempt_at END) AS next \
             FROM {} WHERE status = 'pending'",
            outbox.table
        );
        self.fetch_one(outbox.table, &sql, &[], |row| row.opt_time("next"))
            .await
    }
}
